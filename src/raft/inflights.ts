// The window of 'app' messages in flight to one follower (replicate state): bounded by count.
import type { Index } from './types.js';
import { assert } from './util.js';

export class Inflights {
  readonly capacity: number; // maxInflightMsgs
  /** Last index of each in-flight message, ascending. */
  private readonly indexes: Index[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(capacity: number) {
    assert(capacity >= 1, 'inflights: capacity must be >= 1');
    this.capacity = capacity;
  }

  add(lastIndex: Index, sizeBytes: number): void {
    assert(!this.full(), 'inflights: add to a full window');
    const prev = this.indexes[this.indexes.length - 1];
    assert(prev === undefined || lastIndex > prev, () => `inflights: ${lastIndex} not above ${prev}`);
    this.indexes.push(lastIndex);
    this.sizes.push(sizeBytes);
    this.bytes += sizeBytes;
  }

  /** Frees every message whose last index is <= `index` (acknowledged). */
  freeLE(index: Index): void {
    let n = 0;
    while (n < this.indexes.length && (this.indexes[n] ?? Infinity) <= index) {
      this.bytes -= this.sizes[n] ?? 0;
      n++;
    }
    if (n > 0) {
      this.indexes.splice(0, n);
      this.sizes.splice(0, n);
    }
  }

  /** Frees the oldest message (its ack was probably lost). */
  freeFirst(): void {
    if (this.indexes.length === 0) return;
    this.bytes -= this.sizes[0] ?? 0;
    this.indexes.shift();
    this.sizes.shift();
  }

  full(): boolean {
    return this.indexes.length >= this.capacity;
  }

  count(): number {
    return this.indexes.length;
  }

  sizeBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.indexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}
