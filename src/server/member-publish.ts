// A member added through etcd's MemberAdd is known by its peer URL only (etcd's MemberAddRequest has no client
// URLs). Once started, it publishes its client address through the log, as etcd's members publish their
// attributes: until then MemberList shows it unstarted, and `etcdctl endpoint status --cluster`, the corrupt
// check and raftkv's client cannot reach it. Only a member whose client address is empty in the member table
// publishes (members listed in --initial-cluster carry theirs from the start).
import type { CancelTimer, Clock } from '../shared/clock.js';
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import type { MemberChange } from './member-changes.js';

/** How often an unpublished member looks at the member table and tries again (it may still be receiving the log). */
export const MEMBER_PUBLISH_RETRY_MS = 1000;

export interface MemberPublisherOptions {
  readonly node: KvNode;
  readonly clientAddress: string;
  /** WriteForwarder.memberChange: on the leader, or forwarded to it. */
  readonly change: (change: MemberChange, deadlineMs: number) => Promise<unknown>;
  readonly clock: Clock;
  readonly logger: pino.Logger;
  readonly timeoutMs: number;
}

export class MemberPublisher {
  private cancel: CancelTimer | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly opts: MemberPublisherOptions) {}

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.cancel = this.opts.clock.setTimeout(() => {
      this.attempt().then(
        (done) => {
          if (!done) this.schedule(MEMBER_PUBLISH_RETRY_MS);
        },
        (err: unknown) => {
          this.opts.logger.debug({ err }, 'publishing the client address failed: retrying');
          this.schedule(MEMBER_PUBLISH_RETRY_MS);
        },
      );
    }, delayMs);
  }

  /** True once nothing is left to publish (published, or this member has its address, or left the cluster). */
  private async attempt(): Promise<boolean> {
    if (this.running || this.stopped) return this.stopped;
    const { node } = this.opts;
    const self = node.members().find((m) => m.id === node.id);
    if (self === undefined) return false; // the log has not reached this member yet (or it was removed)
    if (self.clientAddress !== '') return true;
    this.running = true;
    try {
      await this.opts.change({ type: 'publish', id: node.id, clientAddress: this.opts.clientAddress }, this.opts.clock.now() + this.opts.timeoutMs);
      this.opts.logger.info({ clientAddress: this.opts.clientAddress }, 'published this member\'s client address');
      return true;
    } finally {
      this.running = false;
    }
  }
}
