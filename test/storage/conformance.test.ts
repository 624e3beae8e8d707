// Runs the LogStorage conformance suite against WalStorage (with restarts) and the core's MemoryStorage.
import { afterAll } from 'vitest';
import type { ConfState, Index, Snapshot } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { describeLogStorageConformance } from './log-storage-conformance.js';
import type { StorageUnderTest } from './log-storage-conformance.js';
import { removeDir, tempDir } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

function walSubject(w: WalStorage, dir: string, segmentSizeBytes: number): StorageUnderTest {
  return {
    storage: w,
    append: (es) => w.append(es),
    setHardState: (hs) => w.setHardState(hs),
    persist: () => w.sync(),
    applySnapshot: (snap) => w.applySnapshot(snap),
    compact: async (index: Index, confState: ConfState) => await w.compact({ metadata: { index, term: index >= w.firstIndex() - 1 ? w.term(index) : 0, confState } }),
    reopen: async () => {
      await w.close();
      return walSubject(await WalStorage.open(dir, { segmentSizeBytes }), dir, segmentSizeBytes);
    },
    close: () => w.close(),
  };
}

for (const segmentSizeBytes of [64 * 1024 * 1024, 512]) {
  describeLogStorageConformance(`WalStorage (segments of ${segmentSizeBytes} bytes)`, async (confState) => {
    const dir = tempDir('wal-conf');
    dirs.push(dir);
    return walSubject(await WalStorage.bootstrap(dir, confState, { segmentSizeBytes }), dir, segmentSizeBytes);
  });
}

describeLogStorageConformance('MemoryStorage', (confState) => {
  const m = MemoryStorage.fromConfState(confState);
  return Promise.resolve({
    storage: m,
    append: (es) => m.append(es),
    setHardState: (hs) => m.setHardState(hs),
    persist: () => Promise.resolve(),
    // eslint-disable-next-line @typescript-eslint/require-await -- an async wrapper turns throws into rejections
    applySnapshot: async (snap: Snapshot) => {
      m.applySnapshot(snap);
    },
    // eslint-disable-next-line @typescript-eslint/require-await -- as above
    compact: async (index, cs) => {
      m.createSnapshot(index, cs);
      m.compact(index);
    },
    reopen: undefined,
    close: () => Promise.resolve(),
  });
});
