// The driver's bounded inbox: every input of the loop passes through it, so nothing touches the Raft core
// while the loop awaits disk or network. The loop drains it whole in one synchronous turn.

export class Inbox<T> {
  private items: T[] = []; // queued inputs, oldest first; length <= maxItems
  private wakeup: (() => void) | undefined; // resolves the loop's wait(), if it is waiting
  private pokes = 0; // notify() calls not yet consumed by wait()

  constructor(readonly maxItems: number) {
    if (!(maxItems > 0)) throw new Error(`Inbox: maxItems must be positive, got ${maxItems}`);
  }

  get size(): number {
    return this.items.length;
  }

  /** Queues an item; false (and nothing queued) when the inbox is full. */
  push(item: T): boolean {
    if (this.items.length >= this.maxItems) return false;
    this.items.push(item);
    this.notify();
    return true;
  }

  /** Takes everything queued, in arrival order. */
  drain(): T[] {
    const out = this.items;
    this.items = [];
    return out;
  }

  /** Wakes the loop without queueing an item (a tick counter, a stop request). */
  notify(): void {
    this.pokes++;
    const w = this.wakeup;
    this.wakeup = undefined;
    w?.();
  }

  /** Resolves at once if anything was queued or notified since the last wait, else at the next push/notify. */
  wait(): Promise<void> {
    if (this.items.length > 0 || this.pokes > 0) {
      this.pokes = 0;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.wakeup = () => {
        this.pokes = 0;
        resolve();
      };
    });
  }
}
