import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { LinkProxy, ProxyMesh } from './proxy.js';

/** An echo server that also counts the bytes it received. */
async function echoServer(): Promise<{ server: Server; port: number; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => {
      received += d.length;
      s.write(d);
    });
    s.on('error', () => sockets.delete(s));
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return {
    server,
    port: addr.port,
    received: () => received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A client that collects what it reads and whether its connection broke. */
async function client(address: string): Promise<{ socket: Socket; got: () => string; closed: () => boolean }> {
  const [host, port] = address.split(':');
  const socket = connect(Number(port), host ?? '127.0.0.1');
  let got = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (got += d.toString()));
  socket.on('error', () => (closed = true));
  socket.on('close', () => (closed = true));
  await new Promise<void>((r, j) => {
    socket.once('connect', () => r());
    socket.once('error', j);
  });
  return { socket, got: () => got, closed: () => closed };
}

/** Waits (bounded) for a condition driven by socket events. */
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ proxy: LinkProxy; echo: Awaited<ReturnType<typeof echoServer>> }> {
  const echo = await echoServer();
  const proxy = new LinkProxy('1->2', { host: '127.0.0.1', port: echo.port });
  await proxy.start();
  cleanups.push(() => echo.close(), () => proxy.stop());
  return { proxy, echo };
}

describe('LinkProxy', () => {
  it('forwards both directions while open', async () => {
    const { proxy, echo } = await setup();
    const c = await client(proxy.address);
    c.socket.write('hello');
    await until(() => c.got() === 'hello', 'echo');
    expect(echo.received()).toBe(5);
    expect(proxy.stats.bytesForward).toBe(5);
    expect(proxy.stats.bytesBackward).toBe(5);
    c.socket.destroy();
  });

  it('stall both: holds the bytes, delivers them in order on heal', async () => {
    const { proxy, echo } = await setup();
    const c = await client(proxy.address);
    proxy.cut('stall');
    c.socket.write('abc');
    c.socket.write('def');
    await until(() => proxy.bytesHeld === 6, 'bytes held by the proxy');
    expect(echo.received()).toBe(0);
    expect(c.got()).toBe('');
    proxy.heal();
    await until(() => c.got() === 'abcdef', 'echo after heal');
    expect(c.closed()).toBe(false);
    c.socket.destroy();
  });

  it('stall forward only: the target hears nothing; stall backward only: the target hears, the dialer does not', async () => {
    const { proxy, echo } = await setup();
    const c = await client(proxy.address);
    proxy.cut('stall', 'forward');
    c.socket.write('x');
    await until(() => proxy.bytesHeld === 1, 'forward bytes held');
    expect(echo.received()).toBe(0);
    proxy.heal();
    await until(() => c.got() === 'x', 'echo after heal');

    proxy.cut('stall', 'backward');
    c.socket.write('yz');
    await until(() => echo.received() === 3 && proxy.bytesHeld === 2, 'target received, echo held');
    expect(c.got()).toBe('x');
    proxy.heal();
    await until(() => c.got() === 'xyz', 'echo after heal');
    c.socket.destroy();
  });

  it('drop both: resets open connections and new ones until healed', async () => {
    const { proxy } = await setup();
    const c = await client(proxy.address);
    proxy.cut('drop');
    await until(() => c.closed(), 'the open connection to break');
    const c2 = await client(proxy.address).catch(() => undefined);
    if (c2 !== undefined) await until(() => c2.closed(), 'a new connection to be reset');
    expect(proxy.stats.resets).toBeGreaterThanOrEqual(2);
    proxy.heal();
    const c3 = await client(proxy.address);
    c3.socket.write('ok');
    await until(() => c3.got() === 'ok', 'echo after heal');
    c3.socket.destroy();
  });

  it('drop one direction: discards the bytes and resets the broken connection on heal', async () => {
    const { proxy, echo } = await setup();
    const c = await client(proxy.address);
    proxy.cut('drop', 'forward');
    c.socket.write('lost');
    await until(() => proxy.stats.bytesDropped === 4, 'the proxy to read and drop the bytes');
    expect(proxy.stats.bytesForward).toBe(0);
    expect(proxy.bytesHeld).toBe(0);
    expect(c.closed()).toBe(false);
    proxy.heal();
    await until(() => c.closed(), 'the tainted connection to be reset on heal');
    expect(echo.received()).toBe(0);
  });
});

describe('ProxyMesh', () => {
  it('builds dial overrides and cuts the right directed links', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const addr = `127.0.0.1:${echo.port}`;
    const mesh = new ProxyMesh(new Map([[1, addr], [2, addr], [3, addr], [4, addr], [5, addr]]));
    await mesh.start();
    cleanups.push(() => mesh.stop());
    expect(mesh.dialOverride(1)).toMatch(/^2=127\.0\.0\.1:\d+,3=127\.0\.0\.1:\d+,4=127\.0\.0\.1:\d+,5=127\.0\.0\.1:\d+$/);

    mesh.partition([[1, 2], [3, 4, 5]]);
    expect(mesh.cutLinks()).toHaveLength(12); // 2*3 pairs, both directions
    expect(mesh.cutLinks()).toContain('1->3');
    expect(mesh.cutLinks()).not.toContain('1->2');
    mesh.heal();
    expect(mesh.cutLinks()).toEqual([]);

    mesh.isolate(3);
    expect(mesh.cutLinks().sort()).toEqual(['1->3', '2->3', '3->1', '3->2', '3->4', '3->5', '4->3', '5->3']);
    mesh.heal();

    mesh.bridge([1, 2], 3, [4, 5]);
    expect(mesh.cutLinks()).toHaveLength(8);
    expect(mesh.cutLinks().some((l) => l.includes('3'))).toBe(false);
    mesh.heal();

    mesh.oneWay(1, 2);
    expect(mesh.cutLinks()).toEqual(['1->2']);
    // Traffic really stops on the cut link and flows on the others.
    const cut = await client(mesh.link(1, 2).address);
    const open = await client(mesh.link(2, 1).address);
    cut.socket.write('a');
    open.socket.write('b');
    await until(() => open.got() === 'b' && mesh.link(1, 2).bytesHeld === 1, 'open link echoes, cut link holds');
    expect(cut.got()).toBe('');
    mesh.heal();
    await until(() => cut.got() === 'a', 'cut link delivers after heal');
    cut.socket.destroy();
    open.socket.destroy();
  });
});
