// The usage lines of the coordination commands (coord-commands.ts), in a file of their own: main.ts's USAGE
// includes them at load time, and coord-commands.ts imports main.ts.
export const COORD_USAGE = `  watch KEY [--prefix] [--rev N] [--prev-kv]  print events as they happen (resumes across failovers)
  lease grant TTL                           grant a lease of TTL seconds (prints its id in hex)
  lease revoke ID | timetolive ID [--keys] | keep-alive ID [--once] | list
  put KEY VALUE --lease ID                  attach the key to a lease (goes when the lease does)
  lock NAME [--ttl 10] [-- COMMAND ARGS...] hold lock NAME while COMMAND runs (its exit status is ours);
                                            without COMMAND print the lock's key and hold it until Ctrl-C
  elect NAME [PROPOSAL]                     campaign with PROPOSAL and hold leadership until Ctrl-C;
                                            without PROPOSAL print every leader as it is elected
    (watch, lease, lock and elect use etcd's Watch, Lease and KV services, as etcdctl does: they interoperate
     with etcdctl lock/elect on the same names)`;
