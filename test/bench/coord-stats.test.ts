// The coordination scenarios' bookkeeping (bench/coord-stats.ts): put-ack -> event latency, with events that
// arrive before the writer's ack counted as 0 and events of never-acknowledged puts left out; keep-alive round
// trips matched per lease in send order, a warm-up forgotten, unmatched answers counted; the delivery audit's
// duplicates (a revision at or below the watcher's last) and missing (acknowledged, never received) events.
import { describe, expect, it } from 'vitest';
import { DeliveryAudit, DeliveryLatency, RoundTrips } from '../../bench/coord-stats.js';

describe('DeliveryLatency', () => {
  it('measures from the ack to each watcher, counting an event before its ack as 0 ms', () => {
    const d = new DeliveryLatency();
    d.ack(10, 1000, 997);
    d.received(10, 1002); // 2 ms (5 from the send)
    d.received(10, 1010); // 10 ms (13)
    d.received(11, 1005); // before the ack of 11
    d.ack(11, 1006, 1001); // (4 from the send)
    d.received(11, 1007); // 1 ms
    d.received(12, 1008); // never acknowledged
    d.finish();
    expect(d.events).toBe(5);
    expect(d.earlyEvents).toBe(2);
    expect(d.unknownEvents).toBe(1);
    const s = d.histogram.summaryMs();
    expect(s.count).toBe(4);
    expect(s.minMs).toBe(0);
    expect(s.maxMs).toBeCloseTo(10, 2);
    expect(s.meanMs).toBeCloseTo((2 + 10 + 0 + 1) / 4, 2);
    const f = d.fromSend.summaryMs();
    expect(f.count).toBe(4);
    expect(f.meanMs).toBeCloseTo((5 + 13 + 4 + 6) / 4, 2);
  });

  it('an event received at its ack time after the ack is known is 0 ms, not early', () => {
    const d = new DeliveryLatency();
    d.ack(5, 100);
    d.received(5, 100);
    expect(d.earlyEvents).toBe(0);
    expect(d.histogram.summaryMs().count).toBe(1);
  });
});

describe('DeliveryAudit', () => {
  it('passes a clean delivery: every watcher gets every acknowledged revision once, in order', () => {
    const a = new DeliveryAudit(3);
    for (const rev of [5, 6, 7]) for (const w of [2, 0, 1]) a.received(w, rev);
    expect(a.duplicates).toBe(0);
    expect(a.missing([5, 6, 7])).toBe(0);
  });

  it('counts a repeated or out-of-order event as a duplicate, and it does not make up for a missing one', () => {
    const a = new DeliveryAudit(2);
    a.received(0, 5);
    a.received(0, 5); // repeated
    a.received(0, 7);
    a.received(0, 6); // out of order: 6 after 7
    a.received(1, 5);
    a.received(1, 6);
    a.received(1, 7);
    expect(a.duplicates).toBe(2);
    expect(a.missing([5, 6, 7])).toBe(1); // watcher 0 never got 6 in order
  });

  it('counts every (acknowledged revision, watcher) pair that never arrived, and ignores unacknowledged revisions', () => {
    const a = new DeliveryAudit(4);
    a.received(0, 10);
    a.received(1, 10);
    a.received(1, 11); // 11 was never acknowledged (a put that timed out but applied): not owed to anyone
    a.received(3, 12);
    expect(a.missing([10, 12])).toBe(2 + 3);
    expect(a.duplicates).toBe(0);
  });

  it('refuses an event from a watcher it does not know (a bookkeeping bug, not a figure)', () => {
    const a = new DeliveryAudit(2);
    expect(() => a.received(2, 1)).toThrow(/no watcher 2/);
    expect(() => a.received(0.5, 1)).toThrow(/no watcher/);
  });
});

describe('RoundTrips', () => {
  it('matches answers to sends per lease, oldest first', () => {
    const r = new RoundTrips();
    r.sentAt(1n, 0);
    r.sentAt(2n, 1);
    r.sentAt(1n, 5);
    r.answeredAt(2n, 4); // 3 ms
    r.answeredAt(1n, 6); // the first send of lease 1: 6 ms
    expect(r.outstanding).toBe(1);
    r.answeredAt(1n, 7); // the second: 2 ms
    r.answeredAt(3n, 8); // never sent
    expect(r.answered).toBe(3);
    expect(r.unmatched).toBe(1);
    expect(r.outstanding).toBe(0);
    const s = r.histogram.summaryMs();
    expect(s.maxMs).toBeCloseTo(6, 2);
    expect(s.minMs).toBeCloseTo(2, 2);
  });

  it('resetStats forgets the warm-up but keeps pending sends matched', () => {
    const r = new RoundTrips();
    r.sentAt(1n, 0);
    r.answeredAt(1n, 100);
    r.sentAt(1n, 200);
    r.resetStats();
    r.answeredAt(1n, 204);
    expect(r.answered).toBe(1);
    expect(r.histogram.summaryMs().maxMs).toBeCloseTo(4, 2);
  });
});
