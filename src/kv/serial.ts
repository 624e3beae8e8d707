// A FIFO mutex for the state machine's exclusive steps.
/** A simple FIFO mutex: apply, snapshot capture, restore, bootstrap and close run one at a time. */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
