// Assertions for the core: a failed assertion is a bug, never an expected failure.

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionError(typeof message === 'string' ? message : message());
}

export function assertNever(x: never): never {
  throw new AssertionError(`unexpected value: ${JSON.stringify(x)}`);
}

/** Byte-wise equality of two byte arrays. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A stable map key for opaque bytes (ReadIndex contexts). */
export function bytesKey(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.byteLength; i++) s += (b[i] ?? 0).toString(16).padStart(2, '0');
  return s;
}
