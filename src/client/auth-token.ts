// A user's token on every call (etcdctl's --user): authenticates once with etcd's Auth.Authenticate, at the first
// member that answers, and adds the `token` metadata to every call of the channels it is installed on (a gRPC
// client interceptor, so raftkv's own protocol and etcd's carry it alike). A call refused with UNAUTHENTICATED
// ("invalid auth token": the 5-minute TTL lapsed, the password changed, auth was disabled and enabled again)
// drops the token, and the next call authenticates again. A refused authentication fails the call with the
// server's own status (etcd's "authentication failed, invalid user ID or password"). With authentication off
// ("authentication is not enabled") calls go without a token, as etcd's clients do, until a call is refused
// for want of one ("user name is empty"), which asks again.
import { Client, InterceptingCall, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ChannelCredentials, Interceptor, StatusObject } from '@grpc/grpc-js';
import { etcdUnary } from '../protocol/etcd-proto.js';

/** etcdctl's --user NAME:PASSWORD. */
export interface DialUser {
  readonly name: string;
  readonly password: string;
}

const NO_TOKEN = ''; // authentication is off: calls carry none
const AUTH_NOT_ENABLED = 'etcdserver: authentication is not enabled';
export const USER_EMPTY = 'etcdserver: user name is empty';

/**
 * Authentications a call may redo when refused for its token: a lapsed token (UNAUTHENTICATED), or none sent
 * because the member that answered Authenticate had not applied `auth enable` yet while the one serving had
 * ("user name is empty"). More than once: the next Authenticate may meet a lagging member again.
 */
export const MAX_REAUTHENTICATIONS = 3;

/** True when a call was refused for its token (or for carrying none): authenticating again may help. */
export function refusedForToken(err: { readonly code: string; readonly message: string }): boolean {
  return err.code === 'UNAUTHENTICATED' || (err.code === 'INVALID_ARGUMENT' && err.message.includes(USER_EMPTY));
}

/** The pause before redoing authentication the `n`th time (n >= 1): a lagging member gets to apply `auth enable`. */
export function reauthenticationPauseMs(n: number): number {
  return n <= 1 ? 0 : 50 * 2 ** (n - 1);
}

/** How long one Authenticate may take at one member (bcrypt on the server costs ~0.1 s). */
export const AUTHENTICATE_TIMEOUT_MS = 5000;

function statusOf(err: unknown): StatusObject {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  const code = typeof e.code === 'number' ? (e.code as GrpcStatus) : GrpcStatus.UNAVAILABLE;
  const details = typeof e.details === 'string' && e.details !== '' ? e.details : err instanceof Error ? err.message : String(err);
  return { code, details, metadata: new Metadata() };
}

/** Statuses after which the next member is worth asking (it could not answer); anything else is the answer. */
function transient(code: GrpcStatus): boolean {
  return code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED || code === GrpcStatus.CANCELLED || code === GrpcStatus.UNKNOWN;
}

export class AuthToken {
  private current: Promise<string> | undefined;
  private readonly clients = new Map<string, Client>(); // by endpoint; used only for Authenticate

  constructor(
    private readonly user: DialUser,
    private readonly endpoints: readonly string[],
    private readonly credentials: ChannelCredentials,
  ) {}

  /** The token, authenticating first when there is none. */
  token(): Promise<string> {
    this.current ??= this.authenticate();
    const p = this.current;
    p.catch(() => {
      if (this.current === p) this.current = undefined; // the next call tries again
    });
    return p;
  }

  /** Drops the token, whatever it is: the next call authenticates again. */
  reset(): void {
    this.current = undefined;
  }

  /** Drops `token` (a call was refused with it). */
  invalidate(token: string): void {
    const p = this.current;
    if (p === undefined) return;
    p.then(
      (t) => {
        if (t === token && this.current === p) this.current = undefined;
      },
      () => undefined,
    );
  }

  private async authenticate(): Promise<string> {
    let last: unknown = new Error('no endpoint');
    for (const endpoint of this.endpoints) {
      let c = this.clients.get(endpoint);
      if (c === undefined) {
        c = new Client(endpoint, this.credentials);
        this.clients.set(endpoint, c);
      }
      try {
        const res = await etcdUnary(c, 'Auth', 'Authenticate', { name: this.user.name, password: this.user.password }, { timeoutMs: AUTHENTICATE_TIMEOUT_MS });
        return res.token;
      } catch (err) {
        last = err;
        const st = statusOf(err);
        if (st.code === GrpcStatus.FAILED_PRECONDITION && st.details === AUTH_NOT_ENABLED) return NO_TOKEN;
        if (!transient(st.code)) throw err;
      }
    }
    throw last;
  }

  /** The interceptor that adds the token to each call. */
  interceptor(): Interceptor {
    return (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start: (metadata, listener, next) => {
          this.token().then(
            (token) => {
              if (token !== NO_TOKEN) metadata.set('token', token);
              next(metadata, {
                onReceiveStatus: (status, nextStatus) => {
                  const unknown = status.code === GrpcStatus.INVALID_ARGUMENT && status.details === USER_EMPTY;
                  if (status.code === GrpcStatus.UNAUTHENTICATED || unknown) this.invalidate(token);
                  nextStatus(status);
                },
              });
            },
            (err: unknown) => listener.onReceiveStatus?.(statusOf(err)),
          );
        },
      });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
