// The server half of strict decoding (src/protocol/strict-wire.ts): a gRPC server interceptor that refuses a
// request the strict deserializer marked as malformed with INVALID_ARGUMENT, before the handler sees it. One
// interceptor on every server (grpc-server.ts), so no handler checks anything itself.
import { ServerInterceptingCall, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServerInterceptor } from '@grpc/grpc-js';
import { MalformedRequest } from '../protocol/strict-wire.js';

export const strictDecodingInterceptor: ServerInterceptor = (_method, call) => {
  let refused = false;
  const intercepting: ServerInterceptingCall = new ServerInterceptingCall(call, {
    start: (next) => {
      next({
        onReceiveMessage: (message: unknown, nextMessage: (m: unknown) => void) => {
          if (refused) return;
          if (message instanceof MalformedRequest) {
            refused = true;
            intercepting.sendStatus({ code: GrpcStatus.INVALID_ARGUMENT, details: message.reason });
            return;
          }
          nextMessage(message);
        },
        onReceiveHalfClose: (nextHalfClose: () => void) => {
          if (!refused) nextHalfClose();
        },
      });
    },
  });
  return intercepting;
};
