// The usage lines of the authentication commands (auth-commands.ts), in a file of their own: main.ts's USAGE
// includes them at load time, and auth-commands.ts imports main.ts.
export const AUTH_USAGE = `  user add NAME[:PASSWORD] [--new-user-password P] [--no-password] | delete NAME | get NAME | list
  user passwd NAME[:PASSWORD] [--new-user-password P] | grant-role NAME ROLE | revoke-role NAME ROLE
  role add ROLE | delete ROLE | get ROLE | list
  role grant-permission ROLE read|write|readwrite KEY [END] [--prefix | --from-key]
  role revoke-permission ROLE KEY [END] [--prefix | --from-key]
  auth enable | disable | status            (etcd's authentication: etcdctl's commands and output)`;
