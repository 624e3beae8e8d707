// The watch and lease checker (watch-check.ts): a clean synthetic run passes, and each kind of fault a member
// could make (a gap, a duplicate, going back, a split revision, a wrong prev_kv, a bad resume, a wrong compact
// revision, a lease key that outlived its lease or vanished while kept alive) is reported by the right check.
import { describe, expect, it } from 'vitest';
import { checkWatches, type AckWrite, type LeaseRecord, type SeenEvent, type WatchCheckInput, type WatchRecord } from './watch-check.js';

/** A store history over keys k0, k1: revisions 2..21, a put or a delete each, as events with prev_kv. */
function history(): SeenEvent[] {
  const out: SeenEvent[] = [];
  const live = new Map<string, { value: string; modRevision: number; createRevision: number; version: number }>();
  for (let rev = 2; rev <= 21; rev++) {
    const key = `k${rev % 2}`;
    const cur = live.get(key);
    const prevKv = cur === undefined ? null : { value: cur.value, modRevision: cur.modRevision };
    if (cur !== undefined && rev % 5 === 0) {
      live.delete(key);
      out.push({ batch: rev, type: 'delete', key, revision: rev, createRevision: 0, version: 0, value: '', prevKv });
    } else {
      const next = { value: `v${rev}`, modRevision: rev, createRevision: cur?.createRevision ?? rev, version: (cur?.version ?? 0) + 1 };
      live.set(key, next);
      out.push({ batch: rev, type: 'put', key, revision: rev, createRevision: next.createRevision, version: next.version, value: next.value, prevKv });
    }
  }
  return out;
}

function writesOf(events: readonly SeenEvent[]): AckWrite[] {
  return events.map((e) => ({ key: e.key, revision: e.revision, type: e.type, value: e.type === 'put' ? e.value : null }));
}

function watcher(name: string, events: readonly SeenEvent[], from = 2): WatchRecord {
  return { name, prevKv: true, segments: [{ fromRevision: from, events, end: { kind: 'stopped' } }] };
}

function input(watchers: readonly WatchRecord[], extra: Partial<WatchCheckInput> = {}): WatchCheckInput {
  return { writes: writesOf(history()), watchers, endRevision: 21, allWritersRecorded: true, compactedResume: { fromRevision: 20, compactRevision: 21, got: { kind: 'compacted', compactRevision: 21 } }, leases: [], ...extra };
}

function checksOf(i: WatchCheckInput): string[] {
  return [...new Set(checkWatches(i).problems.map((p) => p.split(':')[0] ?? ''))].sort();
}

describe('watch check', () => {
  it('passes a clean run: two watchers, one resumed by hand at the last seen revision + 1', () => {
    const h = history();
    const resumed: WatchRecord = {
      name: 'resumed',
      prevKv: true,
      segments: [
        { fromRevision: 2, events: h.slice(0, 7), end: { kind: 'stopped' } },
        { fromRevision: 9, events: h.slice(7), end: { kind: 'stopped' } },
      ],
    };
    const r = checkWatches(input([watcher('a', h), resumed]));
    expect(r.problems).toEqual([]);
    expect(r.events).toBe(40);
  });

  it('a watcher that started later is checked only from its start', () => {
    const h = history();
    expect(checkWatches(input([watcher('a', h), watcher('late', h.slice(10), 12)])).problems).toEqual([]);
  });

  it('reports an event missing from one watcher (reliable), even when no write of it was acknowledged', () => {
    const h = history();
    expect(checksOf(input([watcher('a', h), watcher('b', h.filter((e) => e.revision !== 9))]))).toEqual(['reliable']);
    expect(checksOf(input([watcher('a', h), watcher('b', h.filter((e) => e.revision !== 9))], { writes: [] }))).toEqual(['reliable']);
  });

  it('reports a revision no watcher saw (a gap everywhere)', () => {
    const h = history().filter((e) => e.revision !== 14);
    const problems = checkWatches(input([watcher('a', h)], { writes: [] })).problems;
    expect(problems.some((p) => p.includes('revision 14'))).toBe(true);
  });

  it('reports a duplicate and a revision going back', () => {
    const h = history();
    const dup = [...h.slice(0, 6), h[5] as SeenEvent, ...h.slice(6)];
    expect(checksOf(input([watcher('a', h), watcher('b', dup)]))).toEqual(['unique']);
    const back = [...h.slice(0, 6), h[2] as SeenEvent, ...h.slice(6)];
    expect(checksOf(input([watcher('a', h), watcher('b', back)]))).toEqual(['ordered', 'unique']);
  });

  it('reports a revision split over two responses (atomic)', () => {
    const h = history();
    const two: SeenEvent[] = [
      { batch: 100, type: 'put', key: 'j0', revision: 22, createRevision: 22, version: 1, value: 'x', prevKv: null },
      { batch: 101, type: 'put', key: 'j1', revision: 22, createRevision: 22, version: 1, value: 'y', prevKv: null },
    ];
    expect(checksOf(input([watcher('a', [...h, ...two])], { endRevision: 22 }))).toEqual(['atomic']);
  });

  it('reports a wrong value against the acknowledged write, and two watchers that disagree', () => {
    const h = history();
    const wrong = h.map((e) => (e.revision === 8 ? { ...e, value: 'other' } : e));
    expect(checksOf(input([watcher('a', wrong)]))).toEqual(['prev_kv', 'reliable']); // the next event's prev_kv no longer matches either
    expect(checksOf(input([watcher('a', h), watcher('b', wrong)]))).toContain('agreeing');
  });

  it('reports a prev_kv that is not the previous event of the key, and one present after a delete', () => {
    const h = history();
    const stale = h.map((e) => (e.revision === 12 ? { ...e, prevKv: { value: 'v2', modRevision: 2 } } : e));
    expect(checksOf(input([watcher('a', h), watcher('b', stale)]))).toEqual(['prev_kv']);
    const afterDelete = h.findIndex((e, i) => i > 0 && h.slice(0, i).some((x) => x.key === e.key && x.type === 'delete' && !h.slice(h.indexOf(x) + 1, i).some((y) => y.key === e.key)));
    const ghost = h.map((e, i) => (i === afterDelete ? { ...e, prevKv: { value: 'ghost', modRevision: 3 } } : e));
    expect(checksOf(input([watcher('a', ghost)]))).toEqual(['prev_kv']);
  });

  it('reports a resume that skipped ahead, and a watcher that fell short of the end revision', () => {
    const h = history();
    const skipped: WatchRecord = {
      name: 'skipped',
      prevKv: false,
      segments: [
        { fromRevision: 2, events: h.slice(0, 7), end: { kind: 'stopped' } },
        { fromRevision: 11, events: h.slice(9), end: { kind: 'stopped' } },
      ],
    };
    expect(checksOf(input([watcher('a', h), skipped]))).toEqual(['reliable', 'resumable']);
    expect(checksOf(input([watcher('a', h.slice(0, 15))]))).toEqual(['reliable']);
  });

  it('reports a compacted resume cancelled with the wrong revision, or not cancelled', () => {
    const h = history();
    expect(checksOf(input([watcher('a', h)], { compactedResume: { fromRevision: 20, compactRevision: 21, got: { kind: 'compacted', compactRevision: 20 } } }))).toEqual(['compacted']);
    expect(checksOf(input([watcher('a', h)], { compactedResume: { fromRevision: 20, compactRevision: 21, got: { kind: 'events', count: 2 } } }))).toEqual(['compacted']);
  });

  it('checks leases: expired and revoked keys gone with a delete event, kept-alive keys still there', () => {
    const lk: SeenEvent[] = [
      { batch: 200, type: 'put', key: 'kl0', revision: 22, createRevision: 22, version: 1, value: 'a', prevKv: null },
      { batch: 201, type: 'put', key: 'kl1', revision: 23, createRevision: 23, version: 1, value: 'b', prevKv: null },
      { batch: 202, type: 'put', key: 'kl2', revision: 24, createRevision: 24, version: 1, value: 'c', prevKv: null },
      { batch: 203, type: 'delete', key: 'kl1', revision: 25, createRevision: 0, version: 0, value: '', prevKv: { value: 'b', modRevision: 23 } },
      { batch: 204, type: 'delete', key: 'kl2', revision: 26, createRevision: 0, version: 0, value: '', prevKv: { value: 'c', modRevision: 24 } },
    ];
    const events = [...history(), ...lk];
    const ok: LeaseRecord[] = [
      { id: 'a', key: 'kl0', mode: 'keepalive', putRevision: 22, revokeRevision: undefined, lost: undefined, final: { present: true, modRevision: 22 } },
      { id: 'b', key: 'kl1', mode: 'expire', putRevision: 23, revokeRevision: undefined, lost: undefined, final: { present: false, modRevision: 0 } },
      { id: 'c', key: 'kl2', mode: 'revoke', putRevision: 24, revokeRevision: 26, lost: undefined, final: { present: false, modRevision: 0 } },
    ];
    const base = { endRevision: 26, writes: writesOf(events.filter((e) => e.revision <= 24)) };
    expect(checkWatches(input([watcher('a', events)], { ...base, leases: ok })).problems).toEqual([]);
    const gone = ok.map((l) => (l.mode === 'keepalive' ? { ...l, final: { present: false, modRevision: 0 } } : l));
    expect(checksOf(input([watcher('a', events)], { ...base, leases: gone }))).toEqual(['lease']);
    const stays = ok.map((l) => (l.mode === 'expire' ? { ...l, final: { present: true, modRevision: 23 } } : l));
    expect(checksOf(input([watcher('a', events)], { ...base, leases: stays }))).toEqual(['lease']);
    const lateDelete = ok.map((l) => (l.mode === 'revoke' ? { ...l, revokeRevision: 25 } : l));
    expect(checksOf(input([watcher('a', events)], { ...base, leases: lateDelete }))).toEqual(['lease']);
    const noEvent = events.filter((e) => e.revision !== 25);
    expect(checksOf(input([watcher('a', noEvent)], { ...base, allWritersRecorded: false, leases: ok }))).toEqual(['lease']);
    const lost = ok.map((l) => (l.mode === 'keepalive' ? { ...l, lost: 'unreachable', final: { present: false, modRevision: 0 } } : l));
    const r = checkWatches(input([watcher('a', events)], { ...base, leases: lost }));
    expect(r.problems).toEqual([]);
    expect(r.notes.some((n) => n.includes('was lost'))).toBe(true);
  });
});
