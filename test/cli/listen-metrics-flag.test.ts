// --listen-metrics (and etcd's --listen-metrics-urls): the URLs taken, normalized, and every refusal named.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseMetricsUrl, parseServeArgs } from '../../src/cli/serve-config.js';
import { RaftKvError } from '../../src/shared/errors.js';

const BASE = ['--id', '1', '--cluster-id', 'c', '--data-dir', '/tmp/x', '--listen-peer', '127.0.0.1:7001', '--listen-client', '127.0.0.1:7101', '--initial-cluster', '1=127.0.0.1:7001/127.0.0.1:7101'];

function refusal(args: readonly string[]): string {
  try {
    parseServeArgs([...BASE, ...args]);
  } catch (err) {
    expect(err).toBeInstanceOf(RaftKvError);
    expect((err as RaftKvError).code).toBe('INVALID_ARGUMENT');
    return (err as RaftKvError).message;
  }
  throw new Error(`accepted ${args.join(' ')}`);
}

describe('--listen-metrics', () => {
  it('is absent by default', () => {
    expect(parseServeArgs(BASE).config.listenMetrics).toBeUndefined();
  });

  it.each([
    ['http://127.0.0.1:2381', 'http://127.0.0.1:2381'],
    ['http://127.0.0.1:2381/', 'http://127.0.0.1:2381'],
    ['http://localhost:80', 'http://localhost:80'],
    ['http://[::1]:0', 'http://[::1]:0'],
    ['http://0.0.0.0:2381', 'http://0.0.0.0:2381'],
  ])('takes %s as %s', (flag, url) => {
    expect(parseServeArgs([...BASE, '--listen-metrics', flag]).config.listenMetrics).toBe(url);
    expect(parseServeArgs([...BASE, '--listen-metrics-urls', flag]).config.listenMetrics).toBe(url);
  });

  it('is read from a config file under its camelCase name', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'raftkv-metrics-flag-')), 'c.json');
    writeFileSync(file, JSON.stringify({ listenMetrics: 'http://127.0.0.1:2381' }));
    expect(parseServeArgs([...BASE, '--config', file]).config.listenMetrics).toBe('http://127.0.0.1:2381');
  });

  it.each([
    ['127.0.0.1:2381', 'is not a URL'],
    ['http://127.0.0.1', 'has no port'],
    ['https://127.0.0.1:2381', 'uses https, which raftkv does not serve yet'],
    ['unix://x:1', 'has scheme "unix", not http'],
    ['http://127.0.0.1:2381/metrics', 'has a path, query or fragment'],
    ['http://127.0.0.1:2381?x=1', 'has a path, query or fragment'],
    ['http://u:p@127.0.0.1:2381', 'carries credentials'],
    ['http://127.0.0.1:99999', 'is not a URL'],
    ['http://127.0.0.1:2381,http://127.0.0.1:2382', 'lists more than one URL; raftkv serves metrics on one'],
  ])('refuses %s: %s', (flag, why) => {
    expect(refusal(['--listen-metrics', flag])).toBe(`--listen-metrics: ${JSON.stringify(flag)} ${why} (expected http://HOST:PORT, e.g. http://127.0.0.1:2381)`);
  });

  it('names the flag it was given', () => {
    expect(refusal(['--listen-metrics-urls', 'ftp://h:1'])).toMatch(/^--listen-metrics-urls: "ftp:\/\/h:1" has scheme "ftp", not http/);
  });

  it('refuses both names at once', () => {
    expect(refusal(['--listen-metrics', 'http://127.0.0.1:1', '--listen-metrics-urls', 'http://127.0.0.1:2'])).toBe('--listen-metrics and --listen-metrics-urls name the same thing: give one');
  });

  it('parseMetricsUrl normalizes the host and port', () => {
    expect(parseMetricsUrl('listen-metrics', 'http://LOCALHOST:02381')).toBe('http://localhost:2381');
  });
});
