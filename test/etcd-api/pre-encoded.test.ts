// The Watch service's shared encoding (src/server/etcd-watch-service.ts): one revision's header and events encoded
// once, then each watcher's response is those bytes plus its watch_id field. It must decode exactly as the whole
// response encoded at once does (protobuf fields may come in any order), and every codec passes PreEncoded through.
import { describe, expect, it } from 'vitest';
import { PreEncoded, etcdCodec } from '../../src/protocol/etcd-proto.js';

const WR = etcdCodec('etcdserverpb.WatchResponse');
const header = { clusterId: 7n, memberId: 3n, revision: 42n, raftTerm: 5n };
const events = [
  { type: 0, kv: { key: Buffer.from('a'), value: Buffer.from('1'), createRevision: 40n, modRevision: 42n, version: 2n, lease: 0n }, prevKv: { key: Buffer.from('a'), value: Buffer.from('0'), createRevision: 40n, modRevision: 40n, version: 1n } },
  { type: 1, kv: { key: Buffer.from('b'), modRevision: 42n } },
];

describe('PreEncoded watch responses', () => {
  it.each([0n, 1n, 127n, 128n, 2n ** 40n])('header + events, then watch_id %s, decode as the response encoded whole', (watchId) => {
    const shared = WR.encode({ header, events });
    const bytes = watchId === 0n ? shared : Buffer.concat([shared, WR.encode({ watchId })]);
    expect(WR.decode(bytes)).toEqual(WR.decode(WR.encode({ header, events, watchId })));
    expect(WR.decode(bytes).watchId).toBe(watchId);
  });

  it('is passed through by a codec as it is', () => {
    const bytes = WR.encode({ header, watchId: 9n });
    expect(WR.encode(new PreEncoded(bytes))).toBe(bytes);
  });
});
