// systemClock timers past Node's one-timer limit (2^31-1 ms, beyond which Node fires after 1 ms), and a
// PendingRequest deadline that far out. Fake timers (they clamp like Node does), no sleeps.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_DELAY_MS, systemClock } from '../../src/shared/clock.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { PendingRequest } from '../../src/node/request.js';

const LONG_MS = 2 ** 31 + 1000;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('systemClock.setTimeout', () => {
  it('waits the full delay when it exceeds one Node timer', () => {
    let fired = 0;
    systemClock.setTimeout(() => fired++, LONG_MS);
    vi.advanceTimersByTime(5);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(LONG_MS - 6);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(10 * LONG_MS);
    expect(fired).toBe(1);
  });

  it('a delay of exactly the limit is one timer; shorter delays are unchanged', () => {
    const fired: string[] = [];
    systemClock.setTimeout(() => fired.push('max'), MAX_TIMER_DELAY_MS);
    systemClock.setTimeout(() => fired.push('short'), 10);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(['short']);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS - 10);
    expect(fired).toEqual(['short', 'max']);
  });

  it('cancels a long timer before and after it re-arms', () => {
    let fired = 0;
    const early = systemClock.setTimeout(() => fired++, LONG_MS);
    early();
    const late = systemClock.setTimeout(() => fired++, LONG_MS);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS + 10); // past the first link of the chain
    late();
    vi.advanceTimersByTime(2 * LONG_MS);
    expect(fired).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses an interval longer than one timer', () => {
    expect(() => systemClock.setInterval(() => undefined, MAX_TIMER_DELAY_MS + 1)).toThrow(/exceeds 2147483647 ms/);
  });
});

describe('PendingRequest', () => {
  it('a deadline beyond 2^31 ms from now does not expire at once, and expires when due', async () => {
    let settled = 0;
    const r = new PendingRequest<string>(systemClock, Date.now() + LONG_MS, 'write', () => settled++);
    let outcome: unknown;
    r.promise.then(
      (v) => (outcome = v),
      (err: unknown) => (outcome = err),
    );
    await vi.advanceTimersByTimeAsync(5);
    expect(r.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(LONG_MS - 6);
    expect(r.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.settled).toBe(true);
    expect(settled).toBe(1);
    expect(isRaftKvError(outcome, 'DEADLINE_EXCEEDED')).toBe(true);
  });

  it('answered before a long deadline: the timer chain is gone', () => {
    const r = new PendingRequest<string>(systemClock, Date.now() + LONG_MS, 'write', () => undefined);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS + 1);
    r.resolve('ok');
    expect(vi.getTimerCount()).toBe(0);
    return expect(r.promise).resolves.toBe('ok');
  });
});
