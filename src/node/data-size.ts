// The data size status() reports: the WAL's and the state machine's bytes on disk. Measuring is a directory
// walk, so it is cached: refreshed at start, after each snapshot taken, and every DATA_SIZE_REFRESH_TICKS ticks.
import type { pino } from 'pino';
import type { DurableLog, StateMachine } from './ports.js';

// status().dataSizeBytes is refreshed this often (5 s at the default tick): a directory walk, not for every tick.
const DATA_SIZE_REFRESH_TICKS = 50;

export class DataSize {
  private cachedBytes = 0; // WAL + state machine bytes as of the last refresh
  private cachedKvBytes = 0; // the state machine's bytes alone, as of the last refresh
  private ticksSinceRefresh = 0; // ticks since the last periodic refresh

  constructor(
    private readonly log: pino.Logger,
    private readonly wal: Pick<DurableLog, 'stats'>,
    private readonly sm: Pick<StateMachine, 'dataSizeBytes'>,
    private readonly closing: () => boolean, // the node stops: the state machine is not asked any more
  ) {}

  get bytes(): number {
    return this.cachedBytes;
  }

  /** The state machine's LevelDB bytes (etcd's backend size: what the quota limits). */
  get kvBytes(): number {
    return this.cachedKvBytes;
  }

  /** `ticks` more ticks passed: refreshes (off the loop) when DATA_SIZE_REFRESH_TICKS have. */
  onTicks(ticks: number): void {
    this.ticksSinceRefresh += ticks;
    if (this.ticksSinceRefresh < DATA_SIZE_REFRESH_TICKS) return;
    this.ticksSinceRefresh = 0;
    void this.refresh();
  }

  /** Measures again (a failure is logged and keeps the last value). Never rejects. */
  async refresh(): Promise<void> {
    try {
      const walBytes = this.wal.stats?.().bytes ?? 0;
      const kvBytes = this.closing() ? 0 : await this.sm.dataSizeBytes();
      this.cachedBytes = walBytes + kvBytes;
      this.cachedKvBytes = kvBytes;
    } catch (err) {
      this.log.debug({ err }, 'data size refresh failed');
    }
  }
}
