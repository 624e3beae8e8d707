// hashKv (etcd's HashKV): the key-space digest of the key space read page by page; the same for the same data
// whatever the page size, different for different data, and the same records' sum as the running digest.
import { describe, expect, it } from 'vitest';
import { hashKv } from '../../src/server/hash-kv.js';
import { KeySpaceDigest } from '../../src/kv/key-space-digest.js';
import type { KeyValue } from '../../src/kv/types.js';
import { FakeCluster, FakeNode } from './fake-node.js';

const KEYS = 2500;

function member(values: (i: number) => string): FakeNode {
  const cluster = new FakeCluster();
  for (let i = 0; i < KEYS; i++) {
    const key = Buffer.from(`k/${String(i).padStart(5, '0')}`);
    cluster.store.set(key.toString('hex'), { key, value: Buffer.from(values(i)), createRevision: i + 2, modRevision: i + 2, version: 1, lease: 0 });
  }
  cluster.revision = KEYS + 1;
  return new FakeNode(1, cluster);
}

const deadline = (): number => Date.now() + 5000;

describe('hashKv', () => {
  it('is the digest of every record, whatever the page size', async () => {
    const a = member((i) => `v${i}`);
    const expected = new KeySpaceDigest();
    for (const kv of a.cluster.store.values()) expected.add(kv.key, kv);
    const pages = await Promise.all([1000, 7, 1].map((n) => hashKv(a, 0n, deadline(), n)));
    for (const h of pages) {
      expect(h.digest).toEqual(expected.value());
      expect(h.hash).toBe(expected.value().lane1);
      expect(h.revision).toBe(KEYS + 1);
    }
  });

  it('differs when one value differs, or one key is missing', async () => {
    const a = await hashKv(member((i) => `v${i}`), 0n, deadline());
    const b = await hashKv(member((i) => (i === 1234 ? 'other' : `v${i}`)), 0n, deadline());
    expect(b.hash).not.toBe(a.hash);
    const short = member((i) => `v${i}`);
    const victim = [...short.cluster.store.values()][77] as KeyValue;
    short.cluster.store.delete(Buffer.from(victim.key).toString('hex'));
    const c = await hashKv(short, 0n, deadline());
    expect(c.hash).not.toBe(a.hash);
    expect(c.digest.count).toBe(KEYS - 1);
  });

  it('reads a page over the response size limit again in smaller pages', async () => {
    const a = member((i) => `v${i}`);
    const plain = await hashKv(a, 0n, deadline(), 100);
    a.failures.push('RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED');
    const retried = await hashKv(a, 0n, deadline(), 100);
    expect(retried.digest).toEqual(plain.digest);
    expect(a.failures).toEqual([]);
  });

  it('answers the revision asked for (0: the current one)', async () => {
    const a = member((i) => `v${i}`);
    expect((await hashKv(a, 42n, deadline())).revision).toBe(42);
    expect((await hashKv(a, 0n, deadline())).revision).toBe(KEYS + 1);
  });
});
