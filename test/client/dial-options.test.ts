// How every client dials (src/client/dial-options.ts) and the CLI's etcd TLS flags (src/cli/dial-flags.ts):
// endpoints as host:port or etcd's URLs, TLS from flags, environment or an https:// endpoint, and clear errors.
import { describe, expect, it } from 'vitest';
import { resolveDial } from '../../src/client/index.js';
import { dialTlsFromFlags } from '../../src/cli/dial-flags.js';

describe('resolveDial', () => {
  it('takes host:port and etcd URLs, deduplicated, plaintext unless asked', () => {
    expect(resolveDial({ endpoints: ['127.0.0.1:7101', ' http://127.0.0.1:7102 ', '127.0.0.1:7101'] })).toMatchObject({ endpoints: ['127.0.0.1:7101', '127.0.0.1:7102'], secure: false });
  });
  it('turns TLS on for https:// endpoints (system roots) or TLS options', () => {
    expect(resolveDial({ endpoints: ['https://127.0.0.1:7101'] })).toMatchObject({ endpoints: ['127.0.0.1:7101'], secure: true });
    expect(resolveDial({ endpoints: ['127.0.0.1:7101'], tls: { insecureSkipVerify: true } }).secure).toBe(true);
  });
  it('refuses mixed schemes, TLS options with http://, missing files and a lone --cert', () => {
    expect(() => resolveDial({ endpoints: ['https://a:1', 'http://b:2'] })).toThrow(/mix http:\/\/ and https:\/\//);
    expect(() => resolveDial({ endpoints: ['http://a:1'], tls: {} })).toThrow(/TLS options given with http:\/\/ endpoints/);
    expect(() => resolveDial({ endpoints: ['a:1'], tls: { caFile: '/nonexistent/ca.crt' } })).toThrow(/--cacert \/nonexistent\/ca\.crt: cannot read it \(no such file\)/);
    expect(() => resolveDial({ endpoints: ['a:1'], tls: { certFile: '/x.crt' } })).toThrow(/--cert and --key go together/);
    expect(() => resolveDial({ endpoints: ['a b:1'] })).toThrow(/is not host:port/);
  });
});

describe('dialTlsFromFlags', () => {
  it('is undefined without any TLS flag, and takes flags over the environment', () => {
    expect(dialTlsFromFlags({}, {})).toBeUndefined();
    expect(dialTlsFromFlags({ cacert: 'a.crt' }, { RAFTKV_CACERT: 'env.crt', RAFTKV_CERT: 'c.crt', RAFTKV_KEY: 'c.key' })).toEqual({ caFile: 'a.crt', certFile: 'c.crt', keyFile: 'c.key' });
    expect(dialTlsFromFlags({ 'insecure-skip-tls-verify': true }, {})).toEqual({ insecureSkipVerify: true });
  });
});
