// Client sessions, raftkv's exactly-once writes: per clientId the last seq applied and the log index it was last
// used at, least recently used first, and the rule that expires them. The rule reads the log only (the applied
// index), so every replica drops the same sessions at the same entry. The state machine keeps each session's
// record (with its stored answer) in LevelDB (schema.ts: sessionKey), so sessions are in snapshots too; this is
// the in-memory table as of the applied index.
import { RaftKvError } from '../shared/errors.js';
import type { Index } from '../raft/types.js';
import type { Session } from './schema.js';

export const DEFAULT_SESSION_TTL_ENTRIES = 100_000; // a session unused for this many applied entries expires
export const DEFAULT_MAX_SESSIONS = 100_000; // beyond this many, the least recently used expire (bounds memory)

export class SessionTable {
  private readonly byClient = new Map<string, Session>(); // least recently used first (Map order)

  constructor(
    private readonly ttlEntries: number, // sessions last used at index <= i - ttlEntries expire after entry i
    private readonly maxSessions: number, // then the least recently used, until at most this many remain
  ) {
    if (!(ttlEntries >= 1 && maxSessions >= 1)) throw new RaftKvError('INVALID_ARGUMENT', 'kv: sessionTtlEntries and maxSessions must be >= 1');
  }

  get size(): number {
    return this.byClient.size;
  }

  get(clientId: string): Session | undefined {
    return this.byClient.get(clientId);
  }

  /** Replaces the table with the sessions read from the store, in any order. */
  load(sessions: readonly (readonly [string, Session])[]): void {
    this.byClient.clear();
    for (const [id, s] of [...sessions].sort((x, y) => x[1].lastIndex - y[1].lastIndex)) this.byClient.set(id, s);
  }

  /** Records the session's use and moves it to the most recently used end. */
  touch(clientId: string, s: Session): void {
    this.byClient.delete(clientId);
    this.byClient.set(clientId, s);
  }

  /** The expiry rule after applying entry `index`: drops and returns the clientIds that expire (same on every replica). */
  expire(index: Index): string[] {
    const dropped: string[] = [];
    for (const [clientId, s] of this.byClient) {
      const expired = index - s.lastIndex >= this.ttlEntries;
      if (!expired && this.byClient.size <= this.maxSessions) break;
      this.byClient.delete(clientId);
      dropped.push(clientId);
    }
    return dropped;
  }
}
