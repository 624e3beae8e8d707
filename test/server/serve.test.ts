// runServer wiring: a real one-member node (startNode) served in-process over loopback; port conflicts fail
// before the node starts; calls during start-up answer UNAVAILABLE.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvClient, text } from '../../src/client/index.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { runServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { silentLogger, waitFor } from './helpers.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-serve-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A port nothing listens on right now (bound and released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const addr = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

describe('runServer', () => {
  it('serves a real one-member node: elect, put, get, status, graceful stop', async () => {
    const [peer, clientPort] = [await freePort(), await freePort()];
    const peerAddress = `127.0.0.1:${peer}`;
    const clientAddress = `127.0.0.1:${clientPort}`;
    const config = testConfig(1, join(dir, 'n1'), {
      peerListen: peerAddress,
      clientListen: clientAddress,
      advertisePeer: peerAddress,
      advertiseClient: clientAddress,
      initialMembers: [{ id: 1, peerAddress, clientAddress }],
      tickIntervalMs: 20,
    });
    const server = await runServer(config, { logger: silentLogger });
    const client = new KvClient({ endpoints: [clientAddress], timeoutMs: 10_000 });
    try {
      const put = await client.put('k', 'v');
      expect(put.header).toMatchObject({ memberId: 1, leaderId: 1 });
      expect(put.header.index).toBeGreaterThan(0);
      const got = await client.get('k');
      expect(text(got.kv?.value ?? new Uint8Array())).toBe('v');
      expect(got.header.index).toBeGreaterThanOrEqual(put.header.index);
      const s = await client.status(clientAddress);
      expect(s).toMatchObject({ id: 1, role: 'leader', clusterId: 'test' });
      expect(s.appliedIndex).toBeGreaterThanOrEqual(put.header.index);
      expect((await client.put('', 'v').catch((e: unknown) => e)) as RaftKvError).toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      client.close();
      await server.stop();
    }
    // Stopped: the port is closed.
    const after = new KvClient({ endpoints: [clientAddress], timeoutMs: 300 });
    await expect(after.status(clientAddress)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    after.close();
  });

  it('fails on a port in use before starting the node', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const addr = blocker.address();
    const port = addr !== null && typeof addr !== 'string' ? addr.port : 0;
    let started = false;
    try {
      const config = testConfig(1, join(dir, 'n1'), { clientListen: `127.0.0.1:${port}`, peerListen: '127.0.0.1:0' });
      await expect(
        runServer(config, {
          logger: silentLogger,
          startNode: () => {
            started = true;
            return Promise.resolve(new FakeNode(1, new FakeCluster()));
          },
        }),
      ).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+/);
      expect(started).toBe(false);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('answers UNAVAILABLE while the node is starting', async () => {
    const clientAddress = `127.0.0.1:${await freePort()}`;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let asked = false;
    const node = new FakeNode(1, new FakeCluster());
    const serving = runServer(testConfig(1, join(dir, 'n1'), { clientListen: clientAddress, peerListen: clientAddress }), {
      logger: silentLogger,
      startNode: async () => {
        asked = true;
        await gate;
        return node;
      },
    });
    await waitFor('startNode called', () => asked);
    const client = new KvClient({ endpoints: [clientAddress], timeoutMs: 200, backoffMinMs: 5, backoffMaxMs: 10 });
    const err = (await client.get('k').catch((e: unknown) => e)) as RaftKvError;
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/member 1 is starting/);
    release();
    const server = await serving;
    expect((await client.status(clientAddress)).id).toBe(1);
    client.close();
    await server.stop();
    expect(node.stopped).toBe(true);
  });
});
