// etcdctl's TLS flags on every raftkv command that dials: --cacert, --cert, --key, --insecure-skip-tls-verify
// (tests only), each also from the environment (RAFTKV_CACERT, RAFTKV_CERT, RAFTKV_KEY), like --endpoints from
// RAFTKV_ENDPOINTS. Any of them, or an https:// endpoint, turns TLS on; the client library reads the files
// (src/client/dial-options.ts, where a future --user joins them).
import type { DialTlsConfig } from '../client/index.js';

export const DIAL_FLAG_OPTIONS = {
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'insecure-skip-tls-verify': { type: 'boolean' },
} as const;
export const DIAL_FLAGS: readonly string[] = Object.keys(DIAL_FLAG_OPTIONS);

export const DIAL_USAGE = `  --cacert FILE             verify members' certificates with this CA (TLS; default $RAFTKV_CACERT)
  --cert FILE --key FILE    a client certificate for --client-cert-auth (default $RAFTKV_CERT, $RAFTKV_KEY)
  --insecure-skip-tls-verify  TLS without verifying the members' certificates (tests only)`;

export interface DialFlagValues {
  readonly cacert?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly 'insecure-skip-tls-verify'?: boolean | undefined;
}

/** The TLS the flags ask for; undefined when none is given (plaintext, unless an endpoint says https://). */
export function dialTlsFromFlags(values: DialFlagValues, env: Readonly<Record<string, string | undefined>>): DialTlsConfig | undefined {
  const caFile = values.cacert ?? env['RAFTKV_CACERT'];
  const certFile = values.cert ?? env['RAFTKV_CERT'];
  const keyFile = values.key ?? env['RAFTKV_KEY'];
  const skip = values['insecure-skip-tls-verify'] === true;
  if (caFile === undefined && certFile === undefined && keyFile === undefined && !skip) return undefined;
  return {
    ...(caFile !== undefined ? { caFile } : {}),
    ...(certFile !== undefined ? { certFile } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
    ...(skip ? { insecureSkipVerify: true } : {}),
  };
}
