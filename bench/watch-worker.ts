// One watcher process of watch-fanout (forked by watch-pool.ts): runs its share of the watchers on the prefix,
// spread over the members, and reports (watcher, revision, receive time) of every event above the revision the
// parent names, in batches, plus its own CPU over the measured window, so the parent can tell whether the load
// generator, rather than the system under test, was the limit.
import { setMaxListeners } from 'node:events';
import { EtcdChannel } from '../src/client/etcd-channel.js';
import { Watcher, type WatchBatch } from '../src/client/watch.js';
import { EVENT_FLUSH_INTERVAL_MS, monoMs, type FromWorker, type ToWorker } from './watch-worker-protocol.js';

function send(m: FromWorker): void {
  process.send?.(m);
}

async function run(start: Extract<ToWorker, { type: 'start' }>, messages: AsyncIterator<ToWorker, void>): Promise<void> {
  const { endpoints, tls } = start;
  const channels = endpoints.map((_, i) => new EtcdChannel({ endpoints: [...endpoints.slice(i), ...endpoints.slice(0, i)], timeoutMs: 10_000, ...(tls !== undefined ? { tls } : {}) }));
  const stop = new AbortController();
  setMaxListeners(0, stop.signal); // every watcher listens to it
  let countFrom = Number.POSITIVE_INFINITY;
  let pending: number[] = [];
  let watchErrors = 0;
  const flush = (): void => {
    if (pending.length === 0) return;
    send({ type: 'events', triples: Float64Array.from(pending) });
    pending = [];
  };
  const watchers: Watcher[] = [];
  const consumers: Promise<void>[] = [];
  for (let i = 0; i < start.watchers; i++) {
    const index = start.firstWatcher + i;
    const w = new Watcher(channels[index % channels.length] as EtcdChannel, start.prefix, { prefix: true, signal: stop.signal });
    watchers.push(w);
    consumers.push(
      (async () => {
        try {
          for await (const b of w as AsyncIterable<WatchBatch>) {
            const now = monoMs();
            for (const e of b.events) {
              const rev = Number(e.kv.modRevision);
              if (rev > countFrom) pending.push(index, rev, now);
            }
          }
        } catch {
          watchErrors++; // a watch that ended in error: reported, and its missing events show in the audit
        }
      })(),
    );
  }
  await Promise.all(watchers.map((w) => w.ready));
  send({ type: 'ready' });
  const flusher = setInterval(flush, EVENT_FLUSH_INTERVAL_MS);
  let cpu0 = process.cpuUsage();
  let wall0 = monoMs();
  for (;;) {
    const { value: m, done } = await messages.next();
    if (done === true || m.type === 'stop') break;
    if (m.type === 'count') {
      countFrom = m.fromRevision;
      cpu0 = process.cpuUsage();
      wall0 = monoMs();
      send({ type: 'counting' });
    }
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuPercent = ((cpu.user + cpu.system) / 1000 / Math.max(1, monoMs() - wall0)) * 100;
  clearInterval(flusher);
  flush();
  stop.abort();
  await Promise.race([Promise.all(consumers), new Promise((r) => setTimeout(r, 5000))]);
  for (const c of channels) c.close();
  send({ type: 'stopped', cpuPercent, reconnects: watchers.reduce((a, w) => a + w.reconnects, 0), watchErrors });
}

/** The parent's messages as an async iterator (ends when the IPC channel closes). */
async function* parentMessages(): AsyncGenerator<ToWorker> {
  const queue: ToWorker[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  process.on('message', (m: ToWorker) => {
    queue.push(m);
    wake?.();
  });
  process.on('disconnect', () => {
    closed = true;
    wake?.();
  });
  for (;;) {
    const m = queue.shift();
    if (m !== undefined) {
      yield m;
      continue;
    }
    if (closed) return;
    await new Promise<void>((r) => {
      wake = r;
    });
    wake = undefined;
  }
}

const messages = parentMessages();
messages
  .next()
  .then(async ({ value: first, done }) => {
    if (done === true || first.type !== 'start') throw new Error(`watch-worker: expected a start message, got ${JSON.stringify(first)}`);
    await run(first, messages);
    process.disconnect();
  })
  .catch((err: unknown) => {
    process.stderr.write(`watch-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
