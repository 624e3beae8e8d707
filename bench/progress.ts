// A progress bar on stderr while a workload runs (a line every few seconds when stderr is not a terminal).
export class ProgressBar {
  private lastLineAtMs = 0; // non-TTY: when the last line was written
  private readonly tty = process.stderr.isTTY;

  constructor(
    private readonly label: string,
    private readonly enabled: boolean,
  ) {}

  update(fraction: number, detail: string): void {
    if (!this.enabled) return;
    const f = Math.max(0, Math.min(1, fraction));
    if (this.tty) {
      const width = 30;
      const full = Math.round(f * width);
      process.stderr.write(`\r${this.label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(f * 100).toFixed(0).padStart(3)}% ${detail}\x1b[K`);
    } else if (performance.now() - this.lastLineAtMs >= 5000) {
      this.lastLineAtMs = performance.now();
      process.stderr.write(`${this.label} ${(f * 100).toFixed(0)}% ${detail}\n`);
    }
  }

  done(detail: string): void {
    if (!this.enabled) return;
    process.stderr.write(this.tty ? `\r${this.label} done: ${detail}\x1b[K\n` : `${this.label} done: ${detail}\n`);
  }
}
