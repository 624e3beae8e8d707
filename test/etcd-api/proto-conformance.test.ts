// proto/etcd against etcd 3.4.23's own .proto files (Debian's golang-etcd-server-dev, found at run time):
// every service, method, message, field and enum value of theirs must be in ours exactly as they have it,
// and ours may add only the elements listed in the comment at the top of proto/etcd/etcdserverpb/rpc.proto.
// Also: the etcd3 npm client's bundled protos (etcd 3.5-era) are all in ours, and the comparison itself
// catches a renamed field, a changed number and the rest (run on mutated copies). Without the reference
// files this fails under CI and is skipped elsewhere (../system-deps.ts).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { ETCD_RPC_PROTO, loadProtoRoot } from '../../src/protocol/etcd-proto.js';
import { describeWithSystem, etcdReferenceRpcProto } from '../system-deps.js';
import { compareShapes, protoShape, type ShapeOptions } from './proto-shape.js';

const PACKAGES = ['etcdserverpb', 'mvccpb', 'authpb'];
const BY_NAME: ShapeOptions = { enumValueNames: true };

const oursRoot = (): protobuf.Root => loadProtoRoot(ETCD_RPC_PROTO, { keepCase: true });

/** The additions listed at the top of our rpc.proto ("//   + full.name   version  why"). */
function listedAdditions(): string[] {
  const text = readFileSync(ETCD_RPC_PROTO, 'utf8');
  return [...text.matchAll(/^\/\/\s+\+\s+(\S+)/gm)].map((m) => m[1] ?? '').sort();
}

describeWithSystem(['etcd-reference-protos'], 'proto/etcd against etcd 3.4.23 (golang-etcd-server-dev)', () => {
  const referenceShape = () => protoShape(loadProtoRoot(etcdReferenceRpcProto() ?? '', { keepCase: true }), PACKAGES, BY_NAME);

  it('has every service, method, message, field and enum value of the reference, identical', () => {
    const reference = referenceShape();
    const diff = compareShapes(reference, protoShape(oursRoot(), PACKAGES, BY_NAME));
    expect(diff.missing).toEqual([]);
    expect(diff.different).toEqual([]);
    // The reference is what we think it is: all six services, and a known count of methods.
    const services = [...reference.keys()].filter((k) => k.startsWith('service ')).sort();
    expect(services).toEqual(['Auth', 'Cluster', 'KV', 'Lease', 'Maintenance', 'Watch'].map((s) => `service etcdserverpb.${s}`));
    expect([...reference.keys()].filter((k) => k.startsWith('rpc ')).length).toBe(5 + 1 + 5 + 5 + 7 + 16);
  });

  it('adds exactly the elements listed at the top of rpc.proto', () => {
    const diff = compareShapes(referenceShape(), protoShape(oursRoot(), PACKAGES, BY_NAME));
    expect(listedAdditions().length).toBeGreaterThan(0);
    expect(diff.extra).toEqual(listedAdditions());
  });
});

describe('proto/etcd against the etcd3 npm client', () => {
  it("has every element of the etcd3 package's protos (enum values by number: it renames them)", () => {
    const require = createRequire(import.meta.url);
    const etcd3Proto = join(dirname(require.resolve('etcd3/package.json')), 'proto', 'rpc.proto');
    const byNumber: ShapeOptions = { enumValueNames: false };
    const diff = compareShapes(
      protoShape(loadProtoRoot(etcd3Proto, { keepCase: true }), PACKAGES, byNumber),
      protoShape(oursRoot(), PACKAGES, byNumber),
    );
    expect(diff.missing).toEqual([]);
    expect(diff.different).toEqual([]);
  });
});

describe('the shape comparison', () => {
  // Ours against mutated copies of ours: each mutation must show up, as missing, different or extra.
  const pristine = protoShape(oursRoot(), PACKAGES, BY_NAME);
  const mutated = (mutate: (root: protobuf.Root) => void) => {
    const root = oursRoot();
    mutate(root);
    return compareShapes(pristine, protoShape(root, PACKAGES, BY_NAME));
  };
  const replaceField = (root: protobuf.Root, typeName: string, fieldName: string, make: (f: protobuf.Field) => protobuf.Field) => {
    const type = root.lookupType(typeName);
    const field = type.fields[fieldName];
    if (field === undefined) throw new Error(`no ${typeName}.${fieldName}`);
    type.remove(field);
    const replacement = make(field);
    type.add(replacement);
    replacement.resolve();
  };

  it('finds nothing between ours and ours', () => {
    expect(compareShapes(pristine, protoShape(oursRoot(), PACKAGES, BY_NAME))).toEqual({ missing: [], different: [], extra: [] });
  });

  it('catches a renamed field', () => {
    const diff = mutated((root) => replaceField(root, 'etcdserverpb.PutRequest', 'prev_kv', (f) => new protobuf.Field('prevKv', f.id, f.type)));
    expect(diff.missing).toEqual(['field etcdserverpb.PutRequest.prev_kv']);
    expect(diff.extra).toEqual(['etcdserverpb.PutRequest.prevKv']);
  });

  it('catches a changed field number', () => {
    const diff = mutated((root) => replaceField(root, 'etcdserverpb.Compare', 'range_end', (f) => new protobuf.Field(f.name, 65, f.type)));
    expect(diff.different).toEqual(['field etcdserverpb.Compare.range_end: 64 bytes | 65 bytes']);
  });

  it('catches a changed type (uint64 -> int64) and a lost repeated label', () => {
    const diff = mutated((root) => {
      replaceField(root, 'etcdserverpb.ResponseHeader', 'member_id', (f) => new protobuf.Field(f.name, f.id, 'int64'));
      replaceField(root, 'etcdserverpb.RangeResponse', 'kvs', (f) => new protobuf.Field(f.name, f.id, f.type));
    });
    expect(diff.different).toEqual([
      'field etcdserverpb.RangeResponse.kvs: 2 repeated mvccpb.KeyValue | 2 mvccpb.KeyValue',
      'field etcdserverpb.ResponseHeader.member_id: 2 uint64 | 2 int64',
    ]);
  });

  it('catches a repeated enum that is no longer packed', () => {
    const diff = mutated((root) =>
      replaceField(root, 'etcdserverpb.WatchCreateRequest', 'filters', (f) => new protobuf.Field(f.name, f.id, f.type, 'repeated', undefined, { packed: false })),
    );
    expect(diff.different).toEqual([
      'field etcdserverpb.WatchCreateRequest.filters: 5 repeated etcdserverpb.WatchCreateRequest.FilterType packed | 5 repeated etcdserverpb.WatchCreateRequest.FilterType',
    ]);
  });

  it('catches a field moved out of its oneof', () => {
    const diff = mutated((root) => replaceField(root, 'etcdserverpb.Compare', 'lease', (f) => new protobuf.Field(f.name, f.id, f.type)));
    expect(diff.different).toEqual(['field etcdserverpb.Compare.lease: 8 int64 oneof target_union | 8 int64']);
  });

  it('catches a changed enum value, a lost method and a lost stream flag', () => {
    const diff = mutated((root) => {
      const sortOrder = root.lookupEnum('etcdserverpb.RangeRequest.SortOrder');
      sortOrder.remove('DESCEND');
      sortOrder.add('DESCEND', 3);
      const kv = root.lookupService('etcdserverpb.KV');
      const compact = kv.methods.Compact;
      if (compact !== undefined) kv.remove(compact);
      const watch = root.lookupService('etcdserverpb.Watch').methods.Watch;
      if (watch !== undefined) watch.responseStream = undefined;
    });
    expect(diff.missing).toEqual(['rpc etcdserverpb.KV.Compact']);
    expect(diff.different).toEqual([
      'rpc etcdserverpb.Watch.Watch: (stream etcdserverpb.WatchRequest) returns (stream etcdserverpb.WatchResponse) | (stream etcdserverpb.WatchRequest) returns (etcdserverpb.WatchResponse)',
      'value etcdserverpb.RangeRequest.SortOrder.DESCEND: 2 | 3',
    ]);
  });

  it('reports an added message once, not each of its fields', () => {
    const diff = mutated((root) => {
      const extra = new protobuf.Type('ExtraRequest').add(new protobuf.Field('a', 1, 'int64')).add(new protobuf.Field('b', 2, 'string'));
      (root.lookup('etcdserverpb') as protobuf.Namespace).add(extra);
      root.resolveAll();
    });
    expect(diff.extra).toEqual(['etcdserverpb.ExtraRequest']);
  });
});
