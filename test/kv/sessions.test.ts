// The session table's expiry rule (sessions.ts): by age in applied entries, then least recently used beyond the cap.
import { describe, expect, it } from 'vitest';
import { SessionTable } from '../../src/kv/sessions.js';

describe('SessionTable', () => {
  it('expires sessions unused for ttlEntries applied entries, oldest first', () => {
    const t = new SessionTable(10, 100);
    t.load([['b', { lastSeq: 1, lastIndex: 5 }], ['a', { lastSeq: 1, lastIndex: 2 }]]);
    expect(t.expire(11)).toEqual([]); // a was last used at 2: 11 - 2 = 9 < 10
    expect(t.expire(12)).toEqual(['a']);
    t.touch('b', { lastSeq: 2, lastIndex: 14 });
    expect(t.expire(23)).toEqual([]);
    expect(t.expire(24)).toEqual(['b']);
    expect(t.size).toBe(0);
  });

  it('beyond maxSessions drops the least recently used, whatever their age', () => {
    const t = new SessionTable(1000, 2);
    t.touch('a', { lastSeq: 1, lastIndex: 1 });
    t.touch('b', { lastSeq: 1, lastIndex: 2 });
    t.touch('a', { lastSeq: 2, lastIndex: 3 }); // a is now the most recent
    t.touch('c', { lastSeq: 1, lastIndex: 4 });
    expect(t.expire(4)).toEqual(['b']);
    expect(t.get('a')?.lastSeq).toBe(2);
    expect(t.size).toBe(2);
  });

  it('refuses a ttl or a cap below 1', () => {
    expect(() => new SessionTable(0, 1)).toThrow(/must be >= 1/);
    expect(() => new SessionTable(1, 0)).toThrow(/must be >= 1/);
  });
});
