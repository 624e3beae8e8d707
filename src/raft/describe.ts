// One-line renderings of messages, entries and Readies, for traces and failure reports.
import type { Entry, Message, Ready } from './types.js';
import { assertNever } from './util.js';

function hex(b: Uint8Array, max = 8): string {
  let s = '';
  for (let i = 0; i < Math.min(b.byteLength, max); i++) s += (b[i] ?? 0).toString(16).padStart(2, '0');
  return b.byteLength > max ? `${s}..(${b.byteLength}B)` : s;
}

export function describeEntry(e: Entry): string {
  const kind = e.type === 'conf-change' ? 'cc' : e.data.byteLength === 0 ? 'noop' : 'n';
  return `${e.term}/${e.index} ${kind}${e.data.byteLength > 0 ? ` ${hex(e.data)}` : ''}`;
}

function describeEntries(ents: readonly Entry[]): string {
  const first = ents[0];
  const last = ents[ents.length - 1];
  if (first === undefined || last === undefined) return '[]';
  if (ents.length <= 3) return `[${ents.map(describeEntry).join(', ')}]`;
  return `[${describeEntry(first)} .. ${describeEntry(last)} (${ents.length})]`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'app':
      return `${head} prev=${m.logTerm}/${m.index} commit=${m.commit} ${describeEntries(m.entries)}`;
    case 'app-resp':
      return m.reject ? `${head} REJECT ${m.index} hint=${m.logTerm}/${m.rejectHint}` : `${head} index=${m.index}`;
    case 'vote':
    case 'pre-vote':
      return `${head} last=${m.logTerm}/${m.index}${m.transfer ? ' transfer' : ''}`;
    case 'vote-resp':
    case 'pre-vote-resp':
      return `${head} ${m.reject ? 'REJECT' : 'grant'}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.context.byteLength > 0 ? ` ctx=${hex(m.context)}` : ''}`;
    case 'heartbeat-resp':
      return `${head}${m.context.byteLength > 0 ? ` ctx=${hex(m.context)}` : ''}`;
    case 'snap': {
      const md = m.snapshot.metadata;
      return `${head} snap=${md.term}/${md.index} voters=[${md.confState.voters.join(',')}] learners=[${md.confState.learners.join(',')}]`;
    }
    case 'timeout-now':
      return head;
    case 'read-index':
      return `${head} ctx=${hex(m.context)}`;
    case 'read-index-resp':
      return `${head} ${m.reject ? 'REJECT' : `index=${m.index}`} ctx=${hex(m.context)}`;
    default:
      return assertNever(m);
  }
}

export function describeReady(rd: Ready): string {
  const parts: string[] = [];
  if (rd.softState !== undefined) parts.push(`soft={${rd.softState.role} lead=${rd.softState.leader}}`);
  if (rd.hardState !== undefined) parts.push(`hard={t${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}}`);
  if (rd.snapshot !== undefined) parts.push(`snap=${rd.snapshot.metadata.term}/${rd.snapshot.metadata.index}`);
  if (rd.entries.length > 0) parts.push(`entries=${describeEntries(rd.entries)}`);
  if (rd.committedEntries.length > 0) parts.push(`committed=${describeEntries(rd.committedEntries)}`);
  if (rd.messages.length > 0) parts.push(`msgs=${rd.messages.length}`);
  if (rd.messagesAfterPersist.length > 0) parts.push(`msgsAfterPersist=${rd.messagesAfterPersist.length}`);
  if (rd.readStates.length > 0) parts.push(`reads=[${rd.readStates.map((r) => `${r.index}:${hex(r.context)}`).join(',')}]`);
  if (rd.mustSync) parts.push('sync');
  return parts.length === 0 ? 'ready{}' : `ready{${parts.join(' ')}}`;
}
