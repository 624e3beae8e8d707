// The run's event trace: a rolling hash over every event (determinism checks) and the last N events,
// formatted lazily (only a failing run pays for the strings).
import type { Message } from '../../src/raft/types.js';
import { mix } from './state-machine.js';

export class Trace {
  private readonly ring: (() => string)[] = []; // last `size` events, oldest first after `next`
  private next = 0; // ring write position once full
  private h1 = 0x9747b28c; // two independent 32-bit lanes: a 64-bit digest
  private h2 = 0x5bd1e995;
  count = 0; // events recorded

  constructor(private readonly size: number) {}

  /** Records one event: `words` feed the hash, `describe` renders it for a failure report. */
  record(words: readonly number[], describe: () => string): void {
    for (const w of words) {
      this.h1 = mix(this.h1, w);
      this.h2 = mix(this.h2, (w ^ 0x2545f491) + this.count);
    }
    this.count++;
    if (this.size <= 0) return;
    if (this.ring.length < this.size) this.ring.push(describe);
    else {
      this.ring[this.next] = describe;
      this.next = (this.next + 1) % this.size;
    }
  }

  digest(): string {
    return `${this.h1.toString(16).padStart(8, '0')}${this.h2.toString(16).padStart(8, '0')}`;
  }

  lines(): string[] {
    const ordered = this.ring.length < this.size ? this.ring : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return ordered.map((d) => d());
  }
}

/** A deterministic numeric code for a string (for hashing message types and event kinds). */
export function code(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A message as trace words (what the trace hash covers of it). */
export function messageWords(m: Message): number[] {
  const w = [code(m.type), m.from, m.to, m.term];
  switch (m.type) {
    case 'app':
      w.push(m.index, m.logTerm, m.entries.length, m.commit);
      break;
    case 'app-resp':
      w.push(m.index, m.reject ? 1 : 0, m.rejectHint, m.logTerm);
      break;
    case 'vote':
    case 'pre-vote':
      w.push(m.index, m.logTerm, m.transfer ? 1 : 0);
      break;
    case 'vote-resp':
    case 'pre-vote-resp':
      w.push(m.reject ? 1 : 0);
      break;
    case 'heartbeat':
      w.push(m.commit, m.context.byteLength);
      break;
    case 'heartbeat-resp':
      w.push(m.context.byteLength);
      break;
    case 'snap':
      w.push(m.snapshot.metadata.index, m.snapshot.metadata.term);
      break;
    case 'timeout-now':
      break;
    case 'read-index':
      w.push(m.context.byteLength);
      break;
    case 'read-index-resp':
      w.push(m.index, m.reject ? 1 : 0);
      break;
    default: {
      const never: never = m;
      throw new Error(`unknown message ${JSON.stringify(never)}`);
    }
  }
  return w;
}
