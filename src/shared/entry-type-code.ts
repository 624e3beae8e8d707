// The one-byte code of an entry's type, as the WAL and the peer wire both write it (the same codes on disk and
// on the wire, so an entry is copied between them without translation).
import type { EntryType } from '../raft/types.js';
import { assertNever } from '../raft/util.js';

export function entryTypeCode(t: EntryType): number {
  switch (t) {
    case 'normal':
      return 0;
    case 'conf-change':
      return 1;
    default:
      return assertNever(t);
  }
}

/** The type a code names, or undefined for a code no writer uses (the caller reports its own corruption). */
export function entryTypeOfCode(code: number): EntryType | undefined {
  return code === 0 ? 'normal' : code === 1 ? 'conf-change' : undefined;
}
