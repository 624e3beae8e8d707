// The integration suites that kill, restart and wipe members, run a second time with TLS and client certificates
// on every client and peer port (helpers.ts: RAFTKV_TEST_TLS, on ports 10,000 below the plaintext run's), so the
// secure path is the tested path: failover, snapshots sent to a lagging member, a wiped member rejoining, and
// membership changes. Membership failed once in four runs under TLS (output lost); the likeliest cause, a promote
// sent before the leader saw the learner's match, is now retried, and six TLS runs of it passed.
// Vitest runs each test file in its own process, so the setting stays in this one.
process.env.RAFTKV_TEST_TLS = '1';
await import('./failover.test.js');
await import('./wiped-member.test.js');
await import('./membership.test.js');
