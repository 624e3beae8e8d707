// How a member's TLS settings (etcd's flags, MemberTlsConfig) turn into listeners and dial credentials:
//   - each port listens with TLS when its settings are given (tls-listener.ts), else plaintext; one port serving
//     both (--listen-peer equal to --listen-client) takes the client port's settings;
//   - members dial each other's peer ports with the peer certificate as their client certificate, verified
//     against --peer-trusted-ca-file (etcd's meaning), re-reading the files as they rotate;
//   - the corrupt check asks other members' client ports (Admin.HashKV) with the client certificate
//     (--cert-file, which `cluster up --tls` issues for both server and client use, like etcd's member
//     certificates), verified against --trusted-ca-file (or the peer CA when only that is given).
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { pino } from 'pino';
import { RaftKvError } from '../shared/errors.js';
import type { DialTlsConfig, MemberTlsConfig, ServerTlsConfig } from '../shared/tls-files.js';
import { CLIENT_DIAL_FLAGS, PEER_DIAL_FLAGS, reloadingDialCredentials } from '../protocol/tls-credentials.js';
import { CERT_RELOAD_INTERVAL_MS, TlsListener } from './tls-listener.js';
import type { TlsPort } from './tls-listener.js';

export interface BoundPort {
  readonly address: string; // as bound
  /** Stops the TLS listener (a plaintext port closes with its gRPC server). */
  close(): Promise<void>;
}

function bindPlain(server: Server, address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(new RaftKvError('UNAVAILABLE', `cannot listen on ${address}: ${err.message}`));
      else resolve(address.replace(/:\d+$/, `:${port}`));
    });
  });
}

/** Serves `server` on `address`: TLS with `tls`, else plaintext. */
export async function listenOn(server: Server, address: string, tls: ServerTlsConfig | undefined, port: TlsPort, logger: pino.Logger): Promise<BoundPort> {
  if (tls === undefined) return { address: await bindPlain(server, address), close: () => Promise.resolve() };
  const listener = await TlsListener.listen({ server, address, tls, port, logger });
  return { address: listener.address, close: () => listener.close() };
}

/** The settings of a port that serves both clients and peers. */
export function sharedPortTls(tls: MemberTlsConfig | undefined): ServerTlsConfig | undefined {
  return tls?.client ?? tls?.peer;
}

function dialTlsOf(server: ServerTlsConfig, caFallback?: string): DialTlsConfig {
  const caFile = server.trustedCaFile ?? caFallback;
  return { certFile: server.certFile, keyFile: server.keyFile, ...(caFile !== undefined ? { caFile } : {}) };
}

/** What members dial each other's peer ports with (plaintext without peer TLS). */
export function peerDialCredentials(tls: MemberTlsConfig | undefined, shared: boolean): ChannelCredentials {
  const server = shared ? sharedPortTls(tls) : tls?.peer;
  return reloadingDialCredentials(server === undefined ? undefined : dialTlsOf(server), shared && tls?.client !== undefined ? CLIENT_DIAL_FLAGS : PEER_DIAL_FLAGS, CERT_RELOAD_INTERVAL_MS);
}

/** What the corrupt check dials other members' client ports with (plaintext without client TLS). */
export function clientPortDialCredentials(tls: MemberTlsConfig | undefined): ChannelCredentials {
  const client = tls?.client;
  return reloadingDialCredentials(client === undefined ? undefined : dialTlsOf(client, tls?.peer?.trustedCaFile), CLIENT_DIAL_FLAGS, CERT_RELOAD_INTERVAL_MS);
}
