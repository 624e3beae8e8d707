// `--initial-cluster` as etcdctl prints it after `member add` (ETCD_INITIAL_CLUSTER="NAME=PEER_URL,..."), for a
// member joining with --initial-cluster-state existing. raftkv's members are named by their id, so an entry
// NAME=PEER with a numeric NAME is that member (its client address comes with the log); the one entry with
// another name is the new member itself (etcdctl names it as `member add NAME` was told) and must carry this
// member's advertised peer address. raftkv's own form, ID=PEER/CLIENT, is parsed by parseInitialCluster.
import type { PeerConfig } from '../node/config.js';
import type { NodeId } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';

const ETCD_ENTRY = /^([^=\s]+)=([^/\s]+)\/?$/; // after the schemes are stripped: NAME=HOST:PORT

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

/** True when some entry has no `/CLIENT` part: etcd's form. */
export function isEtcdInitialCluster(value: string): boolean {
  return value
    .split(',')
    .map((s) => s.trim())
    .some((s) => s !== '' && !s.includes('/'));
}

/**
 * The members an etcd-form --initial-cluster names (schemes already stripped). `self`: this member's --id and
 * advertised addresses. `parseAddress` checks each HOST:PORT as the other entries are checked.
 */
export function parseEtcdInitialCluster(
  value: string,
  self: { readonly id: NodeId; readonly peerAddress: string; readonly clientAddress: string; readonly joining: boolean },
  parseAddress: (flag: string, value: string) => string,
): PeerConfig[] {
  if (!self.joining) {
    const first = value.split(',').map((s) => s.trim()).find((s) => s !== '' && !s.includes('/')) ?? value;
    throw invalid(
      `--initial-cluster: ${JSON.stringify(first)} is not ID=PEER_HOST:PORT/CLIENT_HOST:PORT (NAME=PEER_URL, etcdctl member add's form, is taken with --initial-cluster-state existing only)`,
    );
  }
  const members: PeerConfig[] = [];
  let named: string | undefined;
  for (const part of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = ETCD_ENTRY.exec(part);
    if (m === null) throw invalid(`--initial-cluster: ${JSON.stringify(part)} is not NAME=PEER_URL`);
    const name = m[1] ?? '';
    const peerAddress = parseAddress('initial-cluster', m[2] ?? '');
    let id: NodeId;
    if (/^\d+$/.test(name) && Number(name) >= 1 && Number(name) < 2 ** 31) {
      id = Number(name);
    } else {
      if (named !== undefined) throw invalid(`--initial-cluster: members ${JSON.stringify(named)} and ${JSON.stringify(name)} are not raftkv member ids; only the new member may be named`);
      if (peerAddress !== self.peerAddress) {
        throw invalid(`--initial-cluster: ${JSON.stringify(name)} is not a member id, so it must be this member, but ${peerAddress} is not its peer address (${self.peerAddress})`);
      }
      named = name;
      id = self.id;
    }
    if (members.some((x) => x.id === id)) throw invalid(`--initial-cluster: member ${id} is listed twice`);
    members.push({ id, peerAddress, clientAddress: id === self.id ? self.clientAddress : '' });
  }
  if (members.length === 0) throw invalid('--initial-cluster: no members');
  return members;
}
