#!/usr/bin/env bash
# Installs the system packages the tests need, from Debian: etcd-server (etcd, the reference server the bench
# and the etcd API tests run), etcd-client (etcdctl, an independent client) and golang-etcd-server-dev (etcd
# 3.4.23's own .proto files, which test/etcd-api/proto-conformance.test.ts compares ours against), chromium
# (the headless browser test/browser/dashboard.test.ts drives through playwright-core) and openssl (the local
# CA and certificates of `npm run cluster -- up --tls` and the TLS tests: cluster/tls-certs.ts).
# Run by `npm test` (the pretest script). Idempotent: when everything is present it only checks and exits.
# Without root or apt-get it prints one line saying what is missing and how to install it, and exits 0 (the
# tests that need the packages then skip, or fail when CI is set). The install never leaves a system etcd
# running: service starts are forbidden by a policy-rc.d while it runs, and 2379/2380 are checked afterwards.
set -euo pipefail

PACKAGES=(etcd-server etcd-client golang-etcd-server-dev chromium openssl)

installed() { # package name -> 0 if dpkg has it installed
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]
}

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ! command -v dpkg-query >/dev/null 2>&1 || ! installed golang-etcd-server-dev; then missing+=(golang-etcd-server-dev); fi
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: missing ${missing[*]} (etcd and browser tests skip, or fail under CI); install with: sudo apt-get install -y ${missing[*]} (Debian/Ubuntu), or run this script as root"
  exit 0
fi

echo "install-system-deps: installing Debian ${missing[*]} (apt-get)"

# Forbid service starts while dpkg configures the packages (exit 101 is "action forbidden" to invoke-rc.d and
# deb-systemd-invoke). An existing policy-rc.d is left as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by raftkv scripts/install-system-deps.sh for the length of one apt-get install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
"${apt[@]}" update >/dev/null
"${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null

for p in "${PACKAGES[@]}"; do
  installed "$p" || { echo "install-system-deps: $p did not install" >&2; exit 1; }
done

# Nothing may listen on etcd's default ports afterwards (a system etcd would collide with nothing of ours,
# but would run unasked and hold a data dir under /var/lib/etcd).
listening() { ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E ':(2379|2380)$' || true; }
if [ -n "$(listening)" ] && command -v systemctl >/dev/null 2>&1; then systemctl stop etcd.service >/dev/null 2>&1 || true; fi
if [ -n "$(listening)" ] && [ -x /etc/init.d/etcd ]; then /etc/init.d/etcd stop >/dev/null 2>&1 || true; fi
if [ -n "$(listening)" ]; then
  echo "install-system-deps: something still listens on 2379/2380 after the install: $(listening | tr '\n' ' ')" >&2
  exit 1
fi
echo "install-system-deps: installed $(etcd --version 2>/dev/null | head -n 1)"
