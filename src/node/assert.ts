// The driver's assertions: a failed one is a bug in the node (its loop dies and the node stops), never an
// expected failure (those are RaftKvErrors).

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`node invariant violated: ${msg}`);
}

/** An Error from whatever was thrown or rejected. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
