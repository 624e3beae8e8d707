// What a peer may send over which Peer RPC (src/transport/peer-message-policy.ts), and the rate-limited log of
// refusals (src/transport/refusal-log.ts).
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/raft/types.js';
import { messageProblem } from '../../src/transport/peer-message-policy.js';
import { REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_MAX_KEYS, RefusalLog } from '../../src/transport/refusal-log.js';

const snap: Message = { type: 'snap', from: 2, to: 1, term: 3, snapshot: { metadata: { index: 5, term: 3, confState: { voters: [1, 2, 3], learners: [] } } } };
const hb: Message = { type: 'heartbeat', from: 2, to: 1, term: 3, commit: 4, context: new Uint8Array(0) };

describe('messageProblem', () => {
  it('lets every non-snapshot message through Peer.Stream and only a snap through Peer.SendSnapshot', () => {
    expect(messageProblem('stream', 2, 1, hb)).toBeUndefined();
    expect(messageProblem('snapshot', 2, 1, snap)).toBeUndefined();
    expect(messageProblem('stream', 2, 1, snap)).toMatch(/a snap message may not arrive over Peer\.Stream/);
    expect(messageProblem('snapshot', 2, 1, hb)).toMatch(/a heartbeat message may not arrive over Peer\.SendSnapshot/);
  });
  it('refuses a message that claims another sender or is for another member', () => {
    expect(messageProblem('stream', 3, 1, hb)).toMatch(/claims to be from 2 on a stream from 3/);
    expect(messageProblem('stream', 2, 5, hb)).toMatch(/for 1 reached member 5/);
  });
});

describe('RefusalLog', () => {
  function logged(): { log: RefusalLog; lines: Record<string, unknown>[]; advance: (ms: number) => void } {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    let now = 1_000_000;
    const log = new RefusalLog(pino({ level: 'info' }, sink), () => now);
    return { log, lines, advance: (ms) => (now += ms) };
  }

  it('logs a reason once per interval and says how many were suppressed', async () => {
    const { log, lines, advance } = logged();
    for (let i = 0; i < 50; i++) log.warn('noinc:2', { reason: 'no incarnation' }, 'refused peer stream');
    log.warn('unknown:9', { reason: 'unknown sender' }, 'refused peer stream');
    advance(REFUSAL_LOG_INTERVAL_MS);
    log.warn('noinc:2', { reason: 'no incarnation' }, 'refused peer stream');
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l['reason'], l['suppressedSinceLastLine']])).toEqual([
      ['no incarnation', undefined],
      ['unknown sender', undefined],
      ['no incarnation', 49],
    ]);
  });

  it('remembers a bounded number of reasons (sender-chosen keys cannot grow the heap)', async () => {
    const { log, lines } = logged();
    for (let i = 0; i <= REFUSAL_LOG_MAX_KEYS; i++) log.warn(`unknown:${i}`, {}, 'refused');
    log.warn('unknown:0', {}, 'refused'); // forgotten (the oldest): logged again at once
    log.warn(`unknown:${REFUSAL_LOG_MAX_KEYS}`, {}, 'refused'); // remembered: suppressed
    await new Promise((r) => setImmediate(r));
    expect(lines.length).toBe(REFUSAL_LOG_MAX_KEYS + 2);
  });
});
