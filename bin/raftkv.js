#!/usr/bin/env node
// The `raftkv` command: runs the compiled CLI (built by `npm run build`, which `npm install` runs).
// A failure prints "raftkv: <message>" and exits 1, or with its `exitStatus` (raftkv check: 2 on a mismatch).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`raftkv: ${err instanceof Error ? err.message : String(err)}\n`);
  const status = err !== null && typeof err === 'object' ? err.exitStatus : undefined;
  process.exit(Number.isInteger(status) && status > 0 && status < 256 ? status : 1);
});
