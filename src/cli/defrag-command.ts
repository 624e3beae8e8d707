// `raftkv defrag`: every member the cluster lists gives
// the space of deleted and compacted records back to the file system, one member after the other (as `etcdctl
// defrag --cluster` does), and says what each freed. A member keeps serving while it defragments.
import type { DefragmentResult, KvClient } from '../client/index.js';
import { RaftKvError } from '../shared/errors.js';

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export async function defragCommand(client: KvClient, json: boolean, out: { write(s: string): unknown }): Promise<void> {
  const { members } = await client.members();
  const results: (DefragmentResult | { memberId: number; error: string })[] = [];
  for (const m of [...members].sort((a, b) => a.id - b.id)) {
    try {
      const r = await client.defragment(m.clientAddress);
      results.push(r);
      if (!json) {
        out.write(`member ${r.memberId} (${m.clientAddress}): freed ${mib(r.beforeBytes - r.afterBytes)} (${r.beforeBytes} -> ${r.afterBytes} bytes) in ${r.tookMs} ms\n`);
      }
    } catch (err) {
      const error = err instanceof RaftKvError ? `${err.code}: ${err.message}` : String(err);
      results.push({ memberId: m.id, error });
      if (!json) out.write(`member ${m.id} (${m.clientAddress}): failed: ${error}\n`);
    }
  }
  if (json) out.write(JSON.stringify({ members: results }) + '\n');
  const failed = results.filter((r) => 'error' in r);
  if (failed.length > 0) throw new RaftKvError('UNAVAILABLE', `defrag: ${failed.length} of ${results.length} members failed`);
}
