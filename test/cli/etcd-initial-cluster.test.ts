// --initial-cluster in the form etcdctl member add prints (ETCD_INITIAL_CLUSTER), for a joining member.
import { describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve-config.js';

const join = (cluster: string, state = 'existing'): string[] => [
  '--id', '4', '--cluster-id', 'c', '--data-dir', '/tmp/raftkv-never-used',
  '--listen-peer', '127.0.0.1:7004', '--listen-client', '127.0.0.1:7104',
  '--initial-cluster-state', state, '--initial-cluster', cluster,
];

describe('--initial-cluster as etcdctl prints it', () => {
  it('numeric names are member ids; the one other name is this member, at its advertised peer address', () => {
    const { config } = parseServeArgs(join('1=http://127.0.0.1:7001,2=http://127.0.0.1:7002,four=http://127.0.0.1:7004,3=http://127.0.0.1:7003'));
    expect(config.initialMembers).toEqual([
      { id: 1, peerAddress: '127.0.0.1:7001', clientAddress: '' },
      { id: 2, peerAddress: '127.0.0.1:7002', clientAddress: '' },
      { id: 4, peerAddress: '127.0.0.1:7004', clientAddress: '127.0.0.1:7104' },
      { id: 3, peerAddress: '127.0.0.1:7003', clientAddress: '' },
    ]);
  });

  it.each([
    ['1=http://127.0.0.1:7001,four=http://127.0.0.1:9999', /"four" is not a member id, so it must be this member, but 127.0.0.1:9999 is not its peer address/],
    ['one=http://127.0.0.1:7004,four=http://127.0.0.1:7004', /members "one" and "four" are not raftkv member ids/],
    ['1=http://127.0.0.1:7001,4=http://127.0.0.1:7004,four=http://127.0.0.1:7004', /member 4 is listed twice/],
    ['1=http://127.0.0.1:7001,four=nowhere', /is not HOST:PORT/],
  ])('%s is refused', (cluster, message) => {
    expect(() => parseServeArgs(join(cluster))).toThrow(message);
  });

  it('a new cluster still needs ID=PEER/CLIENT', () => {
    expect(() => parseServeArgs(join('4=http://127.0.0.1:7004', 'new'))).toThrow(/"4=127.0.0.1:7004" is not ID=PEER_HOST:PORT\/CLIENT_HOST:PORT .*existing only/);
  });

  it('raftkv\'s own form is read as before', () => {
    const { config } = parseServeArgs(join('1=127.0.0.1:7001/127.0.0.1:7101,4=127.0.0.1:7004/127.0.0.1:7104'));
    expect(config.initialMembers.map((m) => m.clientAddress)).toEqual(['127.0.0.1:7101', '127.0.0.1:7104']);
  });
});
