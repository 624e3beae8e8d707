// The assertion both CI seed sweeps (core and driver) end each chunk with: no failed seed; the first three
// failures' reports (seed, property, last events, replay command) on stderr and in the assertion message.
import { expect } from 'vitest';

interface FailedRun {
  readonly seed: number;
  readonly violation?: { readonly property: string; readonly detail: string } | undefined;
}

export function expectNoFailures<T extends FailedRun>(failures: readonly T[], format: (f: T) => string): void {
  const report = failures
    .slice(0, 3)
    .map((f) => format(f))
    .join('\n');
  if (failures.length > 0) process.stderr.write(`${report}\n`);
  expect(
    failures.map((f) => `seed ${f.seed}: ${f.violation?.property ?? ''}: ${f.violation?.detail ?? ''}`),
    report,
  ).toEqual([]);
}
