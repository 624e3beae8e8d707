// The cluster's alarms (etcd's alarm store): which member raised which alarm. Raised and cleared only by
// 'alarm' commands through the log (etcd's AlarmRequest ACTIVATE / DEACTIVATE), so every member holds the same
// table at the same applied index; it lives in LevelDB (and therefore in snapshots) under KEY_ALARMS.
//
// While any NOSPACE alarm is raised, the state machine refuses every command that would grow the store with
// etcd's ErrNoSpace (NO_SPACE: `etcdserver: mvcc: database space exceeded`), as etcd's applierV3Capped does: a
// put, a txn whose success or failure branch holds a put (etcd's costTxn: top-level puts only), while ranges,
// deletes, delete-only txns, compactions and alarm commands go on. That is what lets an operator free space
// (compact, defragment) and then disarm.
//
// On-disk format of the KEY_ALARMS value: u8 1 (format) | uvarint n | n x (uvarint member id | u8 type: 1 NOSPACE,
// 2 CORRUPT), sorted by (member id, type).
import { RaftKvError } from '../shared/errors.js';
import type { AlarmMember, AlarmOp, AlarmType, Command } from './types.js';

/** The LevelDB key of the alarm table (a meta key: 'm' prefix, schema.ts). */
export const KEY_ALARMS = Uint8Array.from(Buffer.from('malarms', 'latin1'));

/** etcd's ErrNoSpace message (the gRPC status is RESOURCE_EXHAUSTED: protocol/etcd-errors.ts). */
export const NO_SPACE_MESSAGE = 'etcdserver: mvcc: database space exceeded';

/** etcd's kvOverhead: what a put costs the quota on top of its key and value bytes. */
export const QUOTA_PUT_OVERHEAD_BYTES = 256;

const FORMAT = 1;
const TYPE_CODES: Readonly<Record<AlarmType, number>> = { NOSPACE: 1, CORRUPT: 2 };

function keyOf(a: AlarmMember): string {
  return `${String(a.memberId).padStart(16, '0')}/${a.alarm}`;
}

/**
 * etcd's quota cost of a command (etcdserver/quota.go): a put is 256 + key + value bytes; a txn the larger of its
 * two branches' top-level puts; everything else 0 (never refused for space).
 */
export function quotaCost(cmd: Command): number {
  switch (cmd.type) {
    case 'put':
      return QUOTA_PUT_OVERHEAD_BYTES + cmd.key.length + cmd.value.length;
    case 'txn': {
      const branch = (ops: typeof cmd.success): number =>
        ops.reduce((n, op) => n + (op.type === 'put' ? QUOTA_PUT_OVERHEAD_BYTES + op.key.length + op.value.length : 0), 0);
      return Math.max(branch(cmd.success), branch(cmd.failure));
    }
    case 'delete':
    case 'compact':
    case 'alarm':
    case 'lease-grant':
    case 'lease-revoke':
    case 'lease-checkpoint':
    case 'auth':
      return 0;
    default: {
      const never: never = cmd;
      throw new Error(`kv: unknown command ${JSON.stringify(never)}`);
    }
  }
}

export class AlarmTable {
  private readonly active = new Map<string, AlarmMember>(); // keyOf -> alarm, as of the applied index

  /** Every raised alarm, by member id then type (etcd's AlarmResponse order for GET). */
  list(): AlarmMember[] {
    return [...this.active.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, a]) => a);
  }

  /** A NOSPACE alarm is raised by some member: writes that grow the store are refused. */
  get noSpace(): boolean {
    for (const a of this.active.values()) if (a.alarm === 'NOSPACE') return true;
    return false;
  }

  /** Throws NO_SPACE when a NOSPACE alarm is raised and `cmd` would grow the store (etcd's applierV3Capped). */
  checkCommand(cmd: Command): void {
    if (this.noSpace && quotaCost(cmd) > 0) throw new RaftKvError('NO_SPACE', NO_SPACE_MESSAGE);
  }

  /**
   * Applies an alarm command: the alarms it changed (none when it was already so), as etcd's applier answers.
   * The caller persists encode() in the same batch.
   */
  apply(op: AlarmOp): AlarmMember[] {
    const a: AlarmMember = { memberId: op.memberId, alarm: op.alarm };
    const k = keyOf(a);
    switch (op.action) {
      case 'activate':
        if (this.active.has(k)) return [];
        this.active.set(k, a);
        return [a];
      case 'deactivate':
        if (!this.active.delete(k)) return [];
        return [a];
      default: {
        const never: never = op.action;
        throw new Error(`kv: unknown alarm action ${String(never)}`);
      }
    }
  }

  /** Replaces the table with a stored one (undefined: no alarms). Throws DATA_CORRUPTION on a malformed record. */
  load(b: Uint8Array | undefined): void {
    this.active.clear();
    if (b === undefined) return;
    const bad = (what: string): RaftKvError => new RaftKvError('DATA_CORRUPTION', `kv: the alarm record is damaged: ${what}`);
    let at = 0;
    const uvarint = (): number => {
      let n = 0;
      let mul = 1;
      for (let i = 0; i < 8; i++) {
        const byte = b[at++];
        if (byte === undefined) throw bad('truncated');
        n += (byte & 0x7f) * mul;
        if (byte < 0x80) return n;
        mul *= 0x80;
      }
      throw bad('varint too long');
    };
    if (b[at++] !== FORMAT) throw bad(`unknown format ${String(b[0])}`);
    const n = uvarint();
    for (let i = 0; i < n; i++) {
      const memberId = uvarint();
      const code = b[at++];
      const alarm = code === TYPE_CODES.NOSPACE ? 'NOSPACE' : code === TYPE_CODES.CORRUPT ? 'CORRUPT' : undefined;
      if (alarm === undefined) throw bad(`unknown alarm type ${String(code)}`);
      const a: AlarmMember = { memberId, alarm };
      this.active.set(keyOf(a), a);
    }
    if (at !== b.length) throw bad('trailing bytes');
  }

  encode(): Uint8Array {
    const out: number[] = [FORMAT];
    const uvarint = (v: number): void => {
      let n = v;
      while (n >= 0x80) {
        out.push((n % 0x80) | 0x80);
        n = Math.floor(n / 0x80);
      }
      out.push(n);
    };
    const list = this.list();
    uvarint(list.length);
    for (const a of list) {
      uvarint(a.memberId);
      out.push(TYPE_CODES[a.alarm]);
    }
    return Uint8Array.from(out);
  }
}
