// Polling helpers over the client library: a member's status, the whole cluster's, waiting for a leader.
import { KvClient, type DialTlsConfig, type StatusResult } from '../src/client/index.js';
import { delay } from './local-cluster.js';

/** Each endpoint's status, or the Error it answered with (unreachable, timed out). */
export async function clusterStatus(endpoints: readonly string[], timeoutMs = 1000, tls?: DialTlsConfig): Promise<(StatusResult | Error)[]> {
  const client = new KvClient({ endpoints, timeoutMs, attemptTimeoutMs: timeoutMs, ...(tls !== undefined ? { tls } : {}) });
  try {
    return await Promise.all(
      endpoints.map((e) => client.status(e, { timeoutMs }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))),
    );
  } finally {
    client.close();
  }
}

/**
 * Waits until the reachable members of `endpoints` agree on one leader that says it is the leader, and
 * returns its id. Polls every 100 ms; throws after timeoutMs.
 */
export async function waitForLeader(endpoints: readonly string[], timeoutMs: number, opts: { exclude?: readonly number[]; tls?: DialTlsConfig | undefined } = {}): Promise<number> {
  const until = Date.now() + timeoutMs;
  let last = 'no member answered';
  for (;;) {
    const rows = await clusterStatus(endpoints, 500, opts.tls);
    const up = rows.filter((r): r is StatusResult => !(r instanceof Error));
    const leaders = up.filter((r) => r.role === 'leader' && !(opts.exclude ?? []).includes(r.id));
    const leader = leaders.length === 1 ? leaders[0] : undefined;
    if (leader !== undefined && up.every((r) => r.leaderId === leader.id || r.term < leader.term || r.leaderId === 0)) {
      return leader.id;
    }
    last = up.length === 0 ? 'no member answered' : up.map((r) => `${r.id}:${r.role}@${r.term}`).join(' ');
    if (Date.now() > until) throw new Error(`no leader within ${timeoutMs} ms (${last})`);
    await delay(100);
  }
}

/** Waits until every endpoint reports applied index >= index. */
export async function waitForApplied(endpoints: readonly string[], index: number, timeoutMs: number, tls?: DialTlsConfig): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const rows = await clusterStatus(endpoints, 500, tls);
    if (rows.every((r) => !(r instanceof Error) && r.appliedIndex >= index)) return;
    if (Date.now() > until) {
      const seen = rows.map((r) => (r instanceof Error ? 'down' : String(r.appliedIndex))).join(',');
      throw new Error(`members did not reach applied index ${index} within ${timeoutMs} ms (applied: ${seen})`);
    }
    await delay(100);
  }
}
