// src/protocol/etcd-types.ts is generated from proto/etcd by scripts/gen-etcd-types.ts: this fails while the
// committed file is not what the generator makes now (run `npm run gen:etcd-types` after changing a .proto).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ETCD_TYPES_FILE, generateEtcdTypes } from '../../scripts/gen-etcd-types.js';

describe('src/protocol/etcd-types.ts', () => {
  it('is what scripts/gen-etcd-types.ts generates from proto/etcd', () => {
    expect(readFileSync(ETCD_TYPES_FILE, 'utf8')).toBe(generateEtcdTypes());
  });
});
