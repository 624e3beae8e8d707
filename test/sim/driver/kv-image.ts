// The driver simulation's state machine state, as a value: applied index and term, a hash chain over every
// applied entry (two replicas that applied different sequences differ), the keys with etcd metadata, and the
// member table (KvStateMachine's rules: a conf change the core would refuse leaves it unchanged). Small by
// design (a few keys), so a write batch, a flush and a snapshot each copy the whole image.
import type { Member } from '../../../src/node/api.js';
import { RaftKvError } from '../../../src/shared/errors.js';
import type { ApplyOutcome } from '../../../src/node/ports.js';
import { decodeConfChange } from '../../../src/raft/conf-change.js';
import type { ConfState, Entry, Index, NodeId, Term } from '../../../src/raft/types.js';
import { decodeEnvelope } from '../../../src/kv/codec.js';
import { applyConfChangeToTable } from '../../../src/kv/members.js';
import type { Envelope, KeyValue, RangeRequest, RangeResult } from '../../../src/kv/types.js';
import { hashBytes, mix } from '../state-machine.js';

interface StoredKv {
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

const ENTRY_NORMAL = 1; // entry type words of the hash chain (as the core simulation's state machine)
const ENTRY_CONF_CHANGE = 2;

function keyString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

export class KvImage {
  applied: Index = 0;
  appliedTerm: Term = 0;
  revision = 1; // the store revision: +1 per put and per delete that deleted something (as KvStateMachine)
  chain = 0; // hash of the applied sequence
  keys = new Map<string, StoredKv>(); // latin1 key -> value
  members = new Map<NodeId, Member>();

  clone(): KvImage {
    const c = new KvImage();
    c.applied = this.applied;
    c.appliedTerm = this.appliedTerm;
    c.revision = this.revision;
    c.chain = this.chain;
    c.keys = new Map(this.keys);
    c.members = new Map(this.members);
    return c;
  }

  confState(): ConfState {
    const voters: NodeId[] = [];
    const learners: NodeId[] = [];
    for (const m of this.memberList()) (m.learner ? learners : voters).push(m.id);
    return { voters, learners };
  }

  memberList(): Member[] {
    return [...this.members.values()].sort((a, b) => a.id - b.id);
  }

  /** Applies one committed entry (the caller checks that it follows `applied`). */
  applyEntry(e: Entry): ApplyOutcome {
    let h = mix(this.chain, e.index);
    h = mix(h, e.term);
    h = mix(h, e.type === 'normal' ? ENTRY_NORMAL : ENTRY_CONF_CHANGE);
    this.chain = mix(h, hashBytes(e.data));
    this.applied = e.index;
    this.appliedTerm = e.term;
    if (e.type === 'conf-change') {
      this.applyConfChange(e);
      return { type: 'none' };
    }
    if (e.data.byteLength === 0) return { type: 'none' }; // a leader's no-op
    let env: Envelope;
    try {
      env = decodeEnvelope(e.data);
    } catch (err) {
      return { type: 'error', error: new RaftKvError('DATA_CORRUPTION', `sim kv: undecodable entry ${e.index}: ${String(err)}`) };
    }
    const cmd = env.command;
    switch (cmd.type) {
      case 'put': {
        const ks = keyString(cmd.key);
        const prev = this.keys.get(ks);
        if (cmd.lease !== undefined && cmd.lease !== 0) return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: leases are not simulated') };
        const revision = ++this.revision;
        this.keys.set(ks, {
          value: cmd.value,
          createRevision: prev?.createRevision ?? revision,
          modRevision: revision,
          version: (prev?.version ?? 0) + 1,
        });
        return { type: 'result', result: { type: 'put', prevKv: cmd.prevKv && prev !== undefined ? toKeyValue(cmd.key, prev) : undefined, revision } };
      }
      case 'delete': {
        if (cmd.range.end.byteLength > 0) return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: range deletes are not simulated') };
        const ks = keyString(cmd.range.key);
        const prev = this.keys.get(ks);
        this.keys.delete(ks);
        if (prev !== undefined) this.revision++;
        return {
          type: 'result',
          result: {
            type: 'delete',
            deleted: prev === undefined ? 0 : 1,
            prevKvs: cmd.prevKv && prev !== undefined ? [toKeyValue(cmd.range.key, prev)] : [],
            revision: this.revision,
          },
        };
      }
      case 'txn':
        return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: transactions are not simulated') };
      case 'compact':
        return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: compaction is not simulated') };
      case 'lease-grant':
      case 'lease-revoke':
      case 'lease-checkpoint':
        return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: leases are not simulated') };
      case 'alarm':
        return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: alarms are not simulated') };
      case 'auth':
        return { type: 'error', error: new RaftKvError('INVALID_ARGUMENT', 'sim kv: auth is not simulated') };
      default: {
        const never: never = cmd;
        throw new Error(`unknown command ${JSON.stringify(never)}`);
      }
    }
  }

  /** The keys in [key, end) (end empty: the one key; end "\0": to the end), as KvStateMachine.range answers. */
  range(req: RangeRequest): RangeResult {
    const lo = keyString(req.key);
    const single = req.end.byteLength === 0;
    const openEnd = req.end.byteLength === 1 && req.end[0] === 0;
    const hi = keyString(req.end);
    const matched = [...this.keys.entries()]
      .filter(([k]) => (single ? k === lo : k >= lo && (openEnd || k < hi)))
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const limited = req.limit > 0 ? matched.slice(0, req.limit) : matched;
    const kvs = req.countOnly
      ? []
      : limited.map(([k, v]) => {
          const kv = toKeyValue(Buffer.from(k, 'latin1'), v);
          return req.keysOnly ? { ...kv, value: new Uint8Array(0) } : kv;
        });
    return { kvs, more: limited.length < matched.length, count: matched.length, revision: this.revision };
  }

  /** How this image differs from `other` (undefined: identical). */
  differenceFrom(other: KvImage): string | undefined {
    if (this.applied !== other.applied || this.appliedTerm !== other.appliedTerm) return `applied ${this.applied}/t${this.appliedTerm} vs ${other.applied}/t${other.appliedTerm}`;
    if (this.revision !== other.revision) return `revision ${this.revision} vs ${other.revision}`;
    if (this.chain !== other.chain) return `chain ${this.chain} vs ${other.chain}`;
    const keys = new Set([...this.keys.keys(), ...other.keys.keys()]);
    for (const k of keys) {
      const a = this.keys.get(k);
      const b = other.keys.get(k);
      const fa = a === undefined ? 'absent' : `${keyString(a.value)}@${a.modRevision}v${a.version}c${a.createRevision}`;
      const fb = b === undefined ? 'absent' : `${keyString(b.value)}@${b.modRevision}v${b.version}c${b.createRevision}`;
      if (fa !== fb) return `key ${k}: ${fa} vs ${fb}`;
    }
    const ma = JSON.stringify(this.memberList());
    const mb = JSON.stringify(other.memberList());
    return ma === mb ? undefined : `members ${ma} vs ${mb}`;
  }

  private applyConfChange(e: Entry): void {
    applyConfChangeToTable(this.members, decodeConfChange(e.data), undefined); // the production rule
  }
}

function toKeyValue(key: Uint8Array, v: StoredKv): KeyValue {
  return { key, value: v.value, createRevision: v.createRevision, modRevision: v.modRevision, version: v.version, lease: 0 };
}
