// The metrics server's probes.
//
// /health (etcd's meaning and body): the member knows a leader and a linearizable read of one key answers
// within HEALTH_READ_TIMEOUT_MS: 200 {"health":"true","reason":""}; otherwise 503 {"health":"false","reason":
// "RAFT NO LEADER"} or "QGET ERROR: <why>" (etcd's reason strings; etcd 3.4 leaves out `reason`, 3.5 sends it).
//
// /livez (Kubernetes liveness: restart me if this fails): the process answers and its node has not died: a
// serializable read of one key goes through the node and answers within PROBE_TIMEOUT_MS (etcd 3.6's livez
// checks the same, "serializable_read"). Not about the cluster: a member without quorum is alive, and
// restarting it would not help.
//
// /readyz (Kubernetes readiness: send me clients): the member knows a leader and has applied every entry the
// cluster had committed when it first learned of that leader (its catch-up after a start: until then it would
// serve stale serializable reads; the target is latched once, so later writes do not make it unready). Chosen
// over etcd 3.6's linearizable read because readiness is polled often, by every kubelet, and /health already
// does that read; a member without a leader is unready (its writes and linearizable reads would fail).
//
// Both probes answer `ok` or a line `[-]<check> failed: reason`; `?verbose` lists every check as Kubernetes does.
import type { KvNode, NodeStatus } from '../node/api.js';
import { NONE } from '../raft/types.js';

/** etcd 3.4 bounds its health read by the request timeout (7 s); a probe wants its answer within about 1 s. */
export const HEALTH_READ_TIMEOUT_MS = 1000;
/** The serializable read of /livez answers from local state: anything slower is a stuck process. */
export const PROBE_TIMEOUT_MS = 1000;

const HEALTH_KEY = new TextEncoder().encode('health'); // the key etcdctl endpoint health reads

export interface HealthAnswer {
  readonly status: number; // HTTP status
  readonly body: string;
  readonly contentType: string;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function statusOf(node: KvNode): NodeStatus | undefined {
  try {
    return node.status();
  } catch {
    return undefined; // the node is starting
  }
}

async function read(node: KvNode, serializable: boolean, timeoutMs: number): Promise<void> {
  await node.read({ key: HEALTH_KEY, end: new Uint8Array(0), limit: 1, keysOnly: true, countOnly: false }, { serializable, deadlineMs: Date.now() + timeoutMs });
}

export async function health(node: KvNode): Promise<HealthAnswer> {
  const answer = (ok: boolean, reason: string): HealthAnswer => ({
    status: ok ? 200 : 503,
    body: JSON.stringify({ health: ok ? 'true' : 'false', reason }),
    contentType: 'application/json',
  });
  const s = statusOf(node);
  if (s === undefined || s.leaderId === NONE) return answer(false, 'RAFT NO LEADER');
  try {
    await read(node, false, HEALTH_READ_TIMEOUT_MS);
  } catch (err) {
    return answer(false, `QGET ERROR: ${errorText(err)}`);
  }
  return answer(true, '');
}

interface Check {
  readonly name: string;
  readonly failure: string | undefined; // undefined: passed
}

function probeAnswer(kind: 'livez' | 'readyz', checks: readonly Check[], verbose: boolean): HealthAnswer {
  const failed = checks.filter((c) => c.failure !== undefined);
  const lines = checks.filter((c) => verbose || c.failure !== undefined).map((c) => (c.failure === undefined ? `[+]${c.name} ok` : `[-]${c.name} failed: ${c.failure}`));
  const last = failed.length === 0 ? `${kind} check passed` : `${kind} check failed`;
  const body = failed.length === 0 && !verbose ? 'ok\n' : `${[...lines, last].join('\n')}\n`;
  return { status: failed.length === 0 ? 200 : 503, body, contentType: 'text/plain; charset=utf-8' };
}

export async function livez(node: KvNode, verbose: boolean): Promise<HealthAnswer> {
  let failure: string | undefined;
  try {
    await read(node, true, PROBE_TIMEOUT_MS);
  } catch (err) {
    failure = errorText(err);
  }
  return probeAnswer('livez', [{ name: 'serializable_read', failure }], verbose);
}

/** /readyz's state: the catch-up target, latched from the first status that knows a leader. */
export class Readiness {
  private target: number | undefined; // the commit index when a leader was first known
  private caughtUp = false; // applied reached the target once

  check(node: KvNode, verbose: boolean): HealthAnswer {
    const s = statusOf(node);
    const leader: Check = { name: 'leader', failure: s === undefined ? 'starting' : s.leaderId === NONE ? 'no leader known' : undefined };
    let applied: string | undefined = 'waiting for a leader';
    if (s !== undefined && s.leaderId !== NONE) {
      this.target ??= s.commitIndex;
      if (s.appliedIndex >= this.target) this.caughtUp = true;
      applied = this.caughtUp ? undefined : `applied ${s.appliedIndex} of ${this.target}`;
    }
    if (this.caughtUp) applied = undefined;
    return probeAnswer('readyz', [leader, { name: 'caught_up', failure: applied }], verbose);
  }
}
