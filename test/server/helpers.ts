// Shared helpers for the gRPC tests: loopback servers, condition waits (poll a condition with a deadline, never
// a fixed sleep), a seeded rng, a silent logger.
import { ServerCredentials } from '@grpc/grpc-js';
import type { Server } from '@grpc/grpc-js';
import { createGrpcServer } from '../../src/server/grpc-server.js';
import type { ServerOptions } from '@grpc/grpc-js';
import { pino } from 'pino';

export const silentLogger = pino({ level: 'silent' });

export async function startServer(setup: (server: Server) => void, port = 0, options: ServerOptions = {}): Promise<{ server: Server; address: string; port: number }> {
  const server = createGrpcServer(options); // as a member's: malformed requests refused (strict-decoding.ts)
  setup(server);
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { server, address: `127.0.0.1:${bound}`, port: bound };
}

export function stopServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.tryShutdown(() => resolve());
    setTimeout(() => server.forceShutdown(), 500).unref();
  });
}

/** Polls `cond` every 5 ms until it holds; fails with `what` after timeoutMs. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

