// A TLS port in front of a gRPC server: raftkv terminates TLS itself (node:tls) and hands each accepted
// connection to grpc-js through a connection injector (Server.createConnectionInjector). Why not grpc-js's own
// secure credentials: grpc-js neither reports why a handshake or a client certificate was refused (its
// http2 server is private; it only traces) nor lets us set the minimum version or check a common name; here:
//   - TLS 1.2 at least (MIN_TLS_VERSION); ALPN h2 (gRPC);
//   - plaintext and failed handshakes are refused, with a log line naming the reason (rate-limited);
//   - with clientCertAuth (etcd's --client-cert-auth / --peer-client-cert-auth) a caller without a certificate,
//     or with one that the trusted CA did not sign, that has expired or is not yet valid, is disconnected before
//     any HTTP/2 byte is read, with a log line saying which of these it was; with allowedCn
//     (--peer-cert-allowed-cn) its certificate must also carry that common name;
//   - the certificate, key and CA files are re-read when they change (polled every CERT_RELOAD_INTERVAL_MS) and
//     the new context serves new connections at once: rotation without a restart. A new set that does not load
//     (a key that does not match the certificate, a half-written file) is refused with a log line and the old
//     one kept; it is retried at the next poll.
// The grpc-js call then sees a TLSSocket, so getAuthContext() gives the caller's certificate (where a client
// certificate's common name can later stand for the user, as in etcd).
import { stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from 'node:tls';
import { ServerCredentials } from '@grpc/grpc-js';
import type { Server } from '@grpc/grpc-js';
import type { pino } from 'pino';
import type { Clock } from '../shared/clock.js';
import { systemClock } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import { commonNameOf, loadKeyPair, readCaFile, validityProblem } from '../shared/tls-files.js';
import type { ServerTlsConfig } from '../shared/tls-files.js';
import { RefusalLog } from '../transport/refusal-log.js';

export const MIN_TLS_VERSION = 'TLSv1.2';
/** How often the certificate files are checked for a change: a rotated certificate serves within this. */
export const CERT_RELOAD_INTERVAL_MS = 1000;

export type TlsPort = 'client' | 'peer';

export interface TlsListenerOptions {
  readonly server: Server; // the gRPC server whose services answer on this port
  readonly address: string; // host:port to listen on
  readonly tls: ServerTlsConfig;
  readonly port: TlsPort; // names the flags in messages
  readonly logger: pino.Logger;
  readonly reloadIntervalMs?: number; // default CERT_RELOAD_INTERVAL_MS
  readonly clock?: Clock; // the reload timer; default systemClock
}

/** The flag names of one port's settings, for messages. */
export function tlsFlags(port: TlsPort): { cert: string; key: string; ca: string } {
  const p = port === 'peer' ? 'peer-' : '';
  return { cert: `--${p}cert-file`, key: `--${p}key-file`, ca: `--${p}trusted-ca-file` };
}

/** The secure-context options of `tls` as its files hold them now (throws INVALID_ARGUMENT naming the flag). */
export function loadServerContext(tls: ServerTlsConfig, port: TlsPort): { options: SecureContextOptions; subject: string; validTo: string; problem: string | undefined } {
  const f = tlsFlags(port);
  const pair = loadKeyPair(f.cert, tls.certFile, f.key, tls.keyFile);
  const ca = tls.trustedCaFile !== undefined ? readCaFile(f.ca, tls.trustedCaFile) : undefined;
  return {
    options: { cert: pair.cert, key: pair.key, ...(ca !== undefined ? { ca } : {}) },
    subject: commonNameOf(pair.x509.subject),
    validTo: pair.x509.validTo,
    problem: validityProblem(pair.x509, Date.now()),
  };
}

/** Why the caller on `socket` is refused after its handshake; undefined to serve it. */
function callerProblem(socket: TLSSocket, tls: ServerTlsConfig): string | undefined {
  if (!tls.clientCertAuth) return undefined;
  const peer = socket.getPeerCertificate();
  if (peer === null || Object.keys(peer).length === 0) return 'no client certificate (client certificate authentication is on)';
  const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : '';
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'unknown');
    const why: Record<string, string> = {
      CERT_HAS_EXPIRED: `expired on ${peer.valid_to}`,
      CERT_NOT_YET_VALID: `not valid before ${peer.valid_from}`,
      UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'not signed by the trusted CA',
      UNABLE_TO_GET_ISSUER_CERT: 'not signed by the trusted CA',
      UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'not signed by the trusted CA',
      DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed, not signed by the trusted CA',
      SELF_SIGNED_CERT_IN_CHAIN: 'its chain ends in a CA that is not trusted',
    };
    return `client certificate ${JSON.stringify(cn)} refused: ${why[code] ?? 'not trusted'} (${code})`;
  }
  if (tls.allowedCn !== undefined && cn !== tls.allowedCn) return `client certificate common name ${JSON.stringify(cn)} is not the allowed ${JSON.stringify(tls.allowedCn)}`;
  return undefined;
}

async function stamp(paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    paths.map(async (p) => {
      try {
        const s = await stat(p);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch (err) {
        return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`;
      }
    }),
  );
  return parts.join('|');
}

export class TlsListener {
  private cancelReload: () => void = () => undefined;
  private reloading = false;
  private readonly sockets = new Set<Socket>(); // every accepted TCP connection, until it closes

  private constructor(
    private readonly opts: TlsListenerOptions,
    private readonly tlsServer: TlsServer,
    readonly address: string, // as bound (the real port when listening on :0)
    private lastStamp: string,
    private readonly log: RefusalLog,
  ) {}

  /** Loads the files (INVALID_ARGUMENT on a bad one) and listens (UNAVAILABLE when the port is taken). */
  static async listen(opts: TlsListenerOptions): Promise<TlsListener> {
    const { tls, port, logger } = opts;
    if (tls.clientCertAuth && tls.trustedCaFile === undefined) {
      throw new RaftKvError('INVALID_ARGUMENT', `--${port === 'peer' ? 'peer-' : ''}client-cert-auth needs ${tlsFlags(port).ca} (the CA that signs the callers' certificates)`);
    }
    const files = [tls.certFile, tls.keyFile, ...(tls.trustedCaFile !== undefined ? [tls.trustedCaFile] : [])];
    const firstStamp = await stamp(files);
    const loaded = loadServerContext(tls, port);
    if (loaded.problem !== undefined) logger.warn({ port, reason: loaded.problem }, `this member's ${port} certificate is not valid now: callers will refuse it`);
    const log = new RefusalLog(logger);
    const injector = opts.server.createConnectionInjector(ServerCredentials.createInsecure());
    const tlsServer = createTlsServer({
      ...loaded.options,
      minVersion: MIN_TLS_VERSION,
      ALPNProtocols: ['h2'],
      requestCert: tls.clientCertAuth,
      rejectUnauthorized: false, // checked below, so that the refusal can say why
    });
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      const problem = callerProblem(socket, tls);
      if (problem !== undefined) {
        log.warn(`caller:${problem}`, { port, remote: socket.remoteAddress, reason: problem }, 'refused TLS connection');
        socket.destroy();
        return;
      }
      socket.on('error', (err) => logger.debug({ port, err }, 'TLS connection error'));
      injector.injectConnection(socket);
    });
    tlsServer.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      const reason = /wrong version number|http request|unknown protocol|packet length too long/i.test(err.message) ? `not TLS (plaintext is refused on this port): ${err.message}` : err.message;
      log.warn(`handshake:${err.code ?? err.message}`, { port, remote: socket.remoteAddress, reason }, 'refused TLS handshake');
    });
    const bound = await new Promise<string>((resolve, reject) => {
      const m = /^(.*):(\d+)$/.exec(opts.address);
      const host = (m?.[1] ?? '').replace(/^\[(.*)\]$/, '$1');
      const onError = (err: Error): void => reject(new RaftKvError('UNAVAILABLE', `cannot listen on ${opts.address}: ${err.message}`));
      tlsServer.once('error', onError);
      tlsServer.listen(Number(m?.[2] ?? 0), host, () => {
        tlsServer.off('error', onError);
        const a = tlsServer.address();
        resolve(a !== null && typeof a !== 'string' ? opts.address.replace(/:\d+$/, `:${a.port}`) : opts.address);
      });
    });
    tlsServer.on('error', (err) => logger.error({ port, err }, 'TLS listener error'));
    logger.info({ port, address: bound, subject: loaded.subject, validTo: loaded.validTo, clientCertAuth: tls.clientCertAuth }, 'serving TLS');
    const listener = new TlsListener(opts, tlsServer, bound, firstStamp, log);
    tlsServer.on('connection', (socket: Socket) => {
      listener.sockets.add(socket);
      socket.once('close', () => listener.sockets.delete(socket));
    });
    const clock = opts.clock ?? systemClock;
    listener.cancelReload = clock.setInterval(() => {
      listener.reloadIfChanged().catch((err: unknown) => logger.error({ port, err }, 'certificate reload failed'));
    }, opts.reloadIntervalMs ?? CERT_RELOAD_INTERVAL_MS);
    return listener;
  }

  /** Re-reads the files if any changed since the last good load; keeps the old context if they do not load. */
  async reloadIfChanged(): Promise<boolean> {
    if (this.reloading) return false;
    this.reloading = true;
    try {
      const { tls, port, logger } = this.opts;
      const files = [tls.certFile, tls.keyFile, ...(tls.trustedCaFile !== undefined ? [tls.trustedCaFile] : [])];
      const now = await stamp(files);
      if (now === this.lastStamp) return false;
      let loaded;
      try {
        loaded = loadServerContext(tls, port);
      } catch (err) {
        // A rotation in progress (the key written before the certificate) or a broken file: keep serving the old.
        this.log.warn(`reload:${(err as Error).message}`, { port, reason: (err as Error).message }, 'new TLS files do not load: still serving the previous certificate');
        return false;
      }
      this.tlsServer.setSecureContext(loaded.options);
      this.lastStamp = now;
      if (loaded.problem !== undefined) logger.warn({ port, reason: loaded.problem }, 'reloaded a certificate that is not valid now');
      logger.info({ port, subject: loaded.subject, validTo: loaded.validTo }, 'reloaded TLS certificate');
      return true;
    } finally {
      this.reloading = false;
    }
  }

  /**
   * Stops accepting connections and ends the ones still open (called after the gRPC server's shutdown, which
   * ends the served ones gracefully; what is left is a handshake in progress or a caller that never finished).
   */
  close(): Promise<void> {
    this.cancelReload();
    const closed = new Promise<void>((resolve) => this.tlsServer.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    return closed;
  }
}
