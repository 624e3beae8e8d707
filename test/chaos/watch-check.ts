// The chaos run's watch and lease checker (pure: records in, problems out), after etcd's robustness suite
// (tests/robustness/validate): every watcher's events are
//   ordered     revisions never go down, and no (revision, key) comes twice (no duplicates across resumes)
//   atomic      all events of one revision arrive in one response
//   reliable    every acknowledged write in the watcher's window is an event with its revision and value; every
//               event any watcher saw in a window is seen by every other watcher of that window; and, since every
//               writer of the watched range is recorded, every revision of the window has an event (no gaps)
//   resumable   a watch restarted at the last seen revision + 1 continues exactly there (the windows above are
//               per watcher over all its segments, so a resume that skips or repeats shows as a gap or a duplicate)
//   agreeing    two watchers that saw one (revision, key) saw the same event
//   prev_kv     an event's prev_kv is the key's previous event in the union of all watchers (absent after a delete)
//   is-create   version 1 exactly when create_revision == mod_revision
// and a watch resumed below the compacted revision is cancelled with exactly that compact revision.
// Leases: a key put with a lease that expired or was revoked is gone at the end, and was deleted with an event (at
// or before the revoke's revision); a key whose lease was kept alive (and never reported lost) is still there,
// with the revision it was put at, and no watcher saw it deleted.

export interface AckWrite {
  readonly key: string;
  readonly revision: number;
  readonly type: 'put' | 'delete';
  readonly value: string | null; // put: the value; delete: null
}

export interface SeenKv {
  readonly value: string;
  readonly modRevision: number;
}

export interface SeenEvent {
  readonly batch: number; // which response it came in (unique per watcher)
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly revision: number; // mod revision
  readonly createRevision: number;
  readonly version: number;
  readonly value: string; // '' for a delete
  readonly prevKv: SeenKv | null; // only meaningful for watchers with prevKv
}

export type SegmentEnd =
  | { readonly kind: 'stopped' } // cancelled by the workload (to resume by hand, or at the end)
  | { readonly kind: 'compacted'; readonly compactRevision: number }
  | { readonly kind: 'error'; readonly message: string };

export interface WatchSegment {
  readonly fromRevision: number; // the create's start_revision (> 0: the workload always names one)
  readonly events: readonly SeenEvent[];
  readonly end: SegmentEnd;
}

export interface WatchRecord {
  readonly name: string;
  readonly prevKv: boolean;
  readonly segments: readonly WatchSegment[];
}

export interface CompactedResume {
  readonly fromRevision: number;
  readonly compactRevision: number; // what the workload compacted at
  readonly got: SegmentEnd | { readonly kind: 'events'; readonly count: number };
}

export type LeaseMode = 'keepalive' | 'expire' | 'revoke';

export interface LeaseRecord {
  readonly id: string; // hex
  readonly key: string;
  readonly mode: LeaseMode;
  readonly putRevision: number | undefined; // undefined: the put was not acknowledged
  readonly revokeRevision: number | undefined; // revoke acknowledged at this header revision
  readonly lost: string | undefined; // the client library's lost signal (keepalive mode), if it fired
  readonly final: { readonly present: boolean; readonly modRevision: number } | undefined; // undefined: not read
}

export interface WatchCheckInput {
  readonly writes: readonly AckWrite[]; // acknowledged writes in the watched range (with revisions)
  readonly watchers: readonly WatchRecord[];
  readonly endRevision: number; // the store revision every watcher had to reach at the end
  readonly allWritersRecorded: boolean; // every write in the range is in `writes` or a lease delete: no revision may be missing
  readonly compactedResume: CompactedResume | undefined;
  readonly leases: readonly LeaseRecord[];
}

export interface WatchCheckResult {
  readonly problems: string[];
  readonly notes: string[];
  readonly events: number; // events checked over all watchers
}

const MAX_PROBLEMS_PER_CHECK = 5; // enough to see the pattern; the rest is counted

function eventId(e: { readonly revision: number; readonly key: string }): string {
  return `${e.revision}/${e.key}`;
}

function describe(e: SeenEvent): string {
  return `${e.type} ${e.key}@${e.revision}${e.type === 'put' ? `=${JSON.stringify(e.value)}` : ''}`;
}

class Problems {
  readonly list: string[] = [];
  private readonly counts = new Map<string, number>();

  add(check: string, message: string): void {
    const n = (this.counts.get(check) ?? 0) + 1;
    this.counts.set(check, n);
    if (n <= MAX_PROBLEMS_PER_CHECK) this.list.push(`${check}: ${message}`);
  }

  finish(): string[] {
    for (const [check, n] of this.counts) if (n > MAX_PROBLEMS_PER_CHECK) this.list.push(`${check}: ${n - MAX_PROBLEMS_PER_CHECK} more`);
    return this.list;
  }
}

/** A watcher's window: from its first segment's start revision to the end revision. */
function windowStart(w: WatchRecord): number {
  return w.segments[0]?.fromRevision ?? Number.POSITIVE_INFINITY;
}

function checkOneWatcher(w: WatchRecord, p: Problems): void {
  let last = 0;
  const seen = new Set<string>();
  const batchOf = new Map<number, number>(); // revision -> batch
  w.segments.forEach((s, i) => {
    const prev = w.segments[i - 1];
    if (prev !== undefined) {
      if (prev.end.kind !== 'stopped') p.add('resumable', `${w.name}: segment ${i} follows a segment that ended with ${JSON.stringify(prev.end)}`);
      const expected = last + 1 > prev.fromRevision ? last + 1 : prev.fromRevision;
      if (s.fromRevision !== expected) p.add('resumable', `${w.name}: segment ${i} resumed at ${s.fromRevision}, not at the last seen revision + 1 (${expected})`);
    }
    for (const e of s.events) {
      if (e.revision < s.fromRevision) p.add('ordered', `${w.name}: ${describe(e)} is below the segment's start revision ${s.fromRevision}`);
      if (e.revision < last) p.add('ordered', `${w.name}: ${describe(e)} after an event at revision ${last}`);
      const id = eventId(e);
      if (seen.has(id)) p.add('unique', `${w.name}: ${describe(e)} delivered twice`);
      seen.add(id);
      const b = batchOf.get(e.revision);
      if (b === undefined) batchOf.set(e.revision, e.batch);
      else if (b !== e.batch) p.add('atomic', `${w.name}: the events of revision ${e.revision} came in more than one response`);
      if (e.type === 'put' && (e.version === 1) !== (e.createRevision === e.revision)) {
        p.add('is-create', `${w.name}: ${describe(e)} has version ${e.version} and create revision ${e.createRevision}`);
      }
      last = Math.max(last, e.revision);
    }
  });
  const tail = w.segments[w.segments.length - 1];
  if (tail !== undefined && tail.end.kind !== 'stopped') p.add('reliable', `${w.name}: ended with ${JSON.stringify(tail.end)} before the end of the run`);
}

function sameEvent(a: SeenEvent, b: SeenEvent): boolean {
  return a.type === b.type && a.value === b.value && a.createRevision === b.createRevision && a.version === b.version;
}

export function checkWatches(input: WatchCheckInput): WatchCheckResult {
  const p = new Problems();
  const notes: string[] = [];
  let events = 0;
  const union = new Map<string, { readonly event: SeenEvent; readonly by: string }>(); // (revision, key) -> first seen
  for (const w of input.watchers) {
    checkOneWatcher(w, p);
    for (const s of w.segments) {
      for (const e of s.events) {
        events++;
        const id = eventId(e);
        const u = union.get(id);
        if (u === undefined) union.set(id, { event: e, by: w.name });
        else if (!sameEvent(u.event, e)) p.add('agreeing', `${w.name} saw ${describe(e)} (version ${e.version}, created ${e.createRevision}), ${u.by} saw ${describe(u.event)} (version ${u.event.version}, created ${u.event.createRevision})`);
      }
    }
  }
  const byKey = new Map<string, SeenEvent[]>(); // the union per key, by revision
  for (const { event } of union.values()) {
    const list = byKey.get(event.key) ?? [];
    list.push(event);
    byKey.set(event.key, list);
  }
  for (const list of byKey.values()) list.sort((a, b) => a.revision - b.revision);
  const unionStart = Math.min(...input.watchers.map(windowStart));

  // Reliable: acknowledged writes, the union and (with every writer recorded) every revision, in every window.
  for (const w of input.watchers) {
    const from = windowStart(w);
    const mine = new Map<string, SeenEvent>();
    for (const s of w.segments) for (const e of s.events) mine.set(eventId(e), e);
    const lastSeen = Math.max(0, ...[...mine.values()].map((e) => e.revision));
    if (lastSeen < input.endRevision) p.add('reliable', `${w.name}: its last event is at revision ${lastSeen}, the run ended at ${input.endRevision}`);
    for (const wr of input.writes) {
      if (wr.revision < from || wr.revision > input.endRevision) continue;
      const e = mine.get(eventId(wr));
      if (e === undefined) p.add('reliable', `${w.name}: no event for the acknowledged ${wr.type} of ${wr.key} at revision ${wr.revision}`);
      else if (e.type !== wr.type || (wr.type === 'put' && e.value !== wr.value)) p.add('reliable', `${w.name}: ${describe(e)} but the acknowledged write at that revision was a ${wr.type}${wr.type === 'put' ? ` of ${JSON.stringify(wr.value)}` : ''}`);
    }
    for (const [id, u] of union) {
      if (u.event.revision >= from && u.event.revision <= input.endRevision && !mine.has(id)) p.add('reliable', `${w.name} missed ${describe(u.event)} (seen by ${u.by})`);
    }
  }
  if (input.allWritersRecorded && Number.isFinite(unionStart)) {
    const revisions = new Set([...union.values()].map((u) => u.event.revision));
    for (let r = Math.max(unionStart, 2); r <= input.endRevision; r++) if (!revisions.has(r)) p.add('reliable', `no watcher saw any event at revision ${r} (every revision from ${Math.max(unionStart, 2)} to ${input.endRevision} changes a watched key)`);
  }

  // prev_kv against the union: the key's previous event, when the union covers it.
  for (const w of input.watchers.filter((x) => x.prevKv)) {
    for (const s of w.segments) {
      for (const e of s.events) {
        const list = byKey.get(e.key) ?? [];
        const i = list.findIndex((x) => x.revision === e.revision);
        const before = i > 0 ? list[i - 1] : undefined;
        if (before === undefined) {
          // No earlier event since the union's start: the previous value, if any, is older than every window.
          if (e.prevKv !== null && e.prevKv.modRevision >= unionStart) p.add('prev_kv', `${w.name}: ${describe(e)} has prev_kv at revision ${e.prevKv.modRevision}, but no watcher saw a put of ${e.key} there`);
          continue;
        }
        if (before.type === 'delete') {
          if (e.prevKv !== null) p.add('prev_kv', `${w.name}: ${describe(e)} has prev_kv ${JSON.stringify(e.prevKv)}, but ${e.key} was deleted at ${before.revision}`);
        } else if (e.prevKv === null || e.prevKv.modRevision !== before.revision || e.prevKv.value !== before.value) {
          p.add('prev_kv', `${w.name}: ${describe(e)} has prev_kv ${JSON.stringify(e.prevKv)}, the previous event was ${describe(before)}`);
        }
      }
    }
  }

  // A resume below the compacted revision.
  const c = input.compactedResume;
  if (c !== undefined) {
    if (c.got.kind !== 'compacted') p.add('compacted', `a watch from revision ${c.fromRevision} after compacting at ${c.compactRevision} ended with ${JSON.stringify(c.got)}, not a cancel with the compact revision`);
    else if (c.got.compactRevision !== c.compactRevision) p.add('compacted', `a watch from revision ${c.fromRevision} was cancelled with compact revision ${c.got.compactRevision}, the store was compacted at ${c.compactRevision}`);
  } else notes.push('compacted resume: not checked');

  // Leases.
  for (const l of input.leases) {
    const deletes = (byKey.get(l.key) ?? []).filter((e) => e.type === 'delete' && (l.putRevision === undefined || e.revision > l.putRevision));
    switch (l.mode) {
      case 'keepalive':
        if (l.putRevision === undefined) break;
        if (l.lost !== undefined) {
          notes.push(`lease ${l.id} (kept alive) was lost: ${l.lost}`);
          break;
        }
        if (l.final === undefined) p.add('lease', `lease ${l.id} (kept alive): ${l.key} not read at the end`);
        else if (!l.final.present || l.final.modRevision !== l.putRevision) p.add('lease', `lease ${l.id} was kept alive (never lost) but ${l.key} is ${l.final.present ? `at revision ${l.final.modRevision}` : 'gone'}, it was put at ${l.putRevision}`);
        if (deletes.length > 0) p.add('lease', `lease ${l.id} was kept alive (never lost) but a watcher saw ${l.key} deleted at revision ${deletes[0]?.revision ?? 0}`);
        break;
      case 'expire':
      case 'revoke': {
        if (l.final === undefined) p.add('lease', `lease ${l.id} (${l.mode}): ${l.key} not read at the end`);
        else if (l.final.present) p.add('lease', `lease ${l.id} (${l.mode}) is gone but ${l.key} is still there (revision ${l.final.modRevision})`);
        if (l.putRevision === undefined) break;
        const del = deletes[0];
        if (del === undefined) p.add('lease', `lease ${l.id} (${l.mode}): no watcher saw ${l.key} (put at ${l.putRevision}) deleted`);
        else if (l.revokeRevision !== undefined && del.revision > l.revokeRevision) p.add('lease', `lease ${l.id}: ${l.key} deleted at ${del.revision}, after its revoke was acknowledged at ${l.revokeRevision}`);
        break;
      }
      default: {
        const never: never = l.mode;
        throw new Error(`unknown lease mode ${String(never)}`);
      }
    }
  }
  return { problems: p.finish(), notes, events };
}
