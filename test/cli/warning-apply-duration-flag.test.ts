// etcd's --experimental-warning-apply-duration on `raftkv serve`: a Go duration, absent by default (the node and
// the server then use etcd's 100 ms), refused with the flag named when it is not one.
import { describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve-config.js';

const BASE = ['--id', '1', '--cluster-id', 'c', '--data-dir', '/tmp/x', '--listen-peer', '127.0.0.1:7001', '--listen-client', '127.0.0.1:7101', '--initial-cluster', '1=127.0.0.1:7001/127.0.0.1:7101'];

describe('--experimental-warning-apply-duration', () => {
  it('is absent by default', () => {
    expect(parseServeArgs(BASE).config.warningApplyDurationMs).toBeUndefined();
  });

  it.each([
    ['100ms', 100],
    ['250ms', 250],
    ['1s', 1000],
    ['1.5s', 1500],
  ])('takes %s as %i ms', (text, ms) => {
    expect(parseServeArgs([...BASE, '--experimental-warning-apply-duration', text]).config.warningApplyDurationMs).toBe(ms);
  });

  it.each(['100', 'fast', '0ms', '-1s'])('refuses %s, naming the flag', (text) => {
    expect(() => parseServeArgs([...BASE, `--experimental-warning-apply-duration=${text}`])).toThrow(/--experimental-warning-apply-duration: .* is not a duration/);
  });
});
