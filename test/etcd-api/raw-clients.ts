// Plain gRPC clients for the etcd API tests (no retries, no leader tracking: each call goes where it is sent),
// remembered so the suite closes them all at the end.
import * as grpc from '@grpc/grpc-js';

export function rawClients(): { raw: (endpoint: string) => grpc.Client; closeAll: () => void } {
  const clients: grpc.Client[] = [];
  return {
    raw: (endpoint) => {
      const c = new grpc.Client(endpoint, grpc.credentials.createInsecure());
      clients.push(c);
      return c;
    },
    closeAll: () => {
      for (const c of clients.splice(0)) c.close();
    },
  };
}
