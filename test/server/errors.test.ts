// The RaftKvError <-> gRPC status mapping, both ways.
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { RaftKvError } from '../../src/shared/errors.js';
import type { ErrorCode } from '../../src/shared/errors.js';
import { fromGrpcError, grpcStatusOf, toGrpcStatus } from '../../src/protocol/wire-errors.js';

const ALL: [ErrorCode, GrpcStatus][] = [
  ['NOT_LEADER', GrpcStatus.UNAVAILABLE],
  ['UNAVAILABLE', GrpcStatus.UNAVAILABLE],
  ['INVALID_ARGUMENT', GrpcStatus.INVALID_ARGUMENT],
  ['RESOURCE_EXHAUSTED', GrpcStatus.RESOURCE_EXHAUSTED],
  ['DEADLINE_EXCEEDED', GrpcStatus.DEADLINE_EXCEEDED],
  ['FAILED_PRECONDITION', GrpcStatus.FAILED_PRECONDITION],
  ['NOT_FOUND', GrpcStatus.NOT_FOUND],
  ['CLUSTER_MISMATCH', GrpcStatus.FAILED_PRECONDITION],
  ['DATA_CORRUPTION', GrpcStatus.DATA_LOSS],
  ['DISK_FULL', GrpcStatus.RESOURCE_EXHAUSTED],
  ['PROPOSAL_DROPPED', GrpcStatus.ABORTED],
];

/** What grpc-js hands a client callback for a status the server sent. */
function asServiceError(s: { code: GrpcStatus; details: string; metadata: Metadata }): ServiceError {
  return Object.assign(new Error(`${s.code} ${GrpcStatus[s.code]}: ${s.details}`), { code: s.code, details: s.details, metadata: s.metadata });
}

describe('error mapping', () => {
  it.each(ALL)('%s -> gRPC %i -> the same code and message', (code, grpc) => {
    expect(grpcStatusOf(code)).toBe(grpc);
    const s = toGrpcStatus(new RaftKvError(code, 'something happened'));
    expect(s.code).toBe(grpc);
    const back = fromGrpcError(asServiceError(s));
    expect(back.code).toBe(code);
    expect(back.message).toBe('something happened');
  });

  it('carries the leader hint of NOT_LEADER', () => {
    const s = toGrpcStatus(new RaftKvError('NOT_LEADER', 'not me', { leaderId: 3, leaderAddress: '127.0.0.1:7103' }));
    expect(s.metadata.get('raftkv-leader-id')).toEqual(['3']);
    const back = fromGrpcError(asServiceError(s));
    expect(back.leader).toEqual({ leaderId: 3, leaderAddress: '127.0.0.1:7103' });
  });

  it('maps a bug to INTERNAL without leaking a code', () => {
    const s = toGrpcStatus(new TypeError('x is undefined'));
    expect(s.code).toBe(GrpcStatus.INTERNAL);
    expect(s.details).toMatch(/x is undefined/);
    expect(s.metadata.get('raftkv-code')).toEqual([]);
  });

  it('maps statuses made by gRPC itself (no raftkv-code)', () => {
    const e = (code: GrpcStatus, details: string) => fromGrpcError(asServiceError({ code, details, metadata: new Metadata() }));
    expect(e(GrpcStatus.UNAVAILABLE, 'connect ECONNREFUSED').code).toBe('UNAVAILABLE');
    expect(e(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded').code).toBe('DEADLINE_EXCEEDED');
    expect(e(GrpcStatus.RESOURCE_EXHAUSTED, 'Received message larger than max (3000000 vs. 2097152)').code).toBe('INVALID_ARGUMENT');
    expect(e(GrpcStatus.RESOURCE_EXHAUSTED, 'Too many requests').code).toBe('RESOURCE_EXHAUSTED');
    expect(e(GrpcStatus.UNIMPLEMENTED, 'no such method').code).toBe('INVALID_ARGUMENT');
    expect(e(GrpcStatus.CANCELLED, 'cancelled').code).toBe('UNAVAILABLE');
    // A made-up raftkv-code is ignored, not trusted.
    const md = new Metadata();
    md.set('raftkv-code', 'BOGUS');
    expect(fromGrpcError(asServiceError({ code: GrpcStatus.NOT_FOUND, details: 'x', metadata: md })).code).toBe('NOT_FOUND');
    expect(fromGrpcError(new Error('socket hang up')).code).toBe('UNAVAILABLE');
  });
});
