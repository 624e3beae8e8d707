// The TTL of etcd's `simple` tokens on this member (etcd's simpleTokenTTLKeeper): a token lives 5 minutes from
// its last use here and each use refreshes it. The tokens themselves are assigned through the log (the auth
// store, kv/auth-store.ts, holds token -> user on every member); this only tracks when each was last used here,
// and tells the store to forget one whose TTL lapsed. Every timer goes through the injected Clock.
import type { Clock } from '../shared/clock.js';

/** etcd's simple token TTL (simpleTokenTTLDefault). */
export const SIMPLE_TOKEN_TTL_MS = 5 * 60_000;
/** How often lapsed tokens are swept (etcd's keeper ticks every second). */
export const SIMPLE_TOKEN_SWEEP_MS = 1000;

export class SimpleTokenTtl {
  private readonly lastUsedMs = new Map<string, number>(); // token -> last use on this member

  constructor(
    private readonly clock: Clock,
    private readonly forget: (token: string) => void,
    private readonly ttlMs = SIMPLE_TOKEN_TTL_MS,
  ) {}

  /**
   * A use of a token the store knows: false (and the store forgets it) when its TTL lapsed, else refreshed.
   * The first use on this member starts its TTL (the store assigned it moments ago, at apply).
   */
  use(token: string): boolean {
    const now = this.clock.now();
    const last = this.lastUsedMs.get(token);
    if (last !== undefined && now - last >= this.ttlMs) {
      this.drop(token);
      return false;
    }
    this.lastUsedMs.set(token, now);
    return true;
  }

  /** A token just issued by this member: its TTL starts now. */
  issued(token: string): void {
    this.lastUsedMs.set(token, this.clock.now());
  }

  /** Forgets every token whose TTL lapsed (called every SIMPLE_TOKEN_SWEEP_MS by start()). */
  sweep(): void {
    const now = this.clock.now();
    for (const [token, last] of this.lastUsedMs) if (now - last >= this.ttlMs) this.drop(token);
  }

  /** Starts the sweep timer; returns its cancel. */
  start(): () => void {
    return this.clock.setInterval(() => this.sweep(), SIMPLE_TOKEN_SWEEP_MS);
  }

  private drop(token: string): void {
    this.lastUsedMs.delete(token);
    this.forget(token);
  }
}
