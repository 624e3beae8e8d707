#!/usr/bin/env node
// The `raftkv` command: runs the compiled CLI (built by `npm run build`, which `npm install` runs).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`raftkv: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
