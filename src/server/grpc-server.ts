// Every gRPC server a member runs is made here, so each one refuses malformed requests (strict-decoding.ts).
import { Server } from '@grpc/grpc-js';
import type { ServerOptions } from '@grpc/grpc-js';
import { strictDecodingInterceptor } from './strict-decoding.js';

export function createGrpcServer(options: ServerOptions = {}): Server {
  return new Server({ ...options, interceptors: [strictDecodingInterceptor, ...(options.interceptors ?? [])] });
}
