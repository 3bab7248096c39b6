/**
 * A program that the root daemon runs with a user's credentials (the rm of the previous
 * checkpoint, the statfs asked as the user, the restart engine's program): through setpriv,
 * never with child_process's (or execa's) uid/gid options.
 *
 * With those options the forked child takes the user's uid BEFORE its execve(), and libuv's
 * spawn blocks the caller's one thread, the daemon's event loop, until that execve (it reads a
 * close-on-exec pipe to learn whether the exec failed). From the moment its uid is the user's,
 * the child may be sent SIGSTOP by that user, as any of their own processes: a stop that lands
 * in that window froze the whole daemon, every user's requests with it, for as long as the
 * user liked: no spool pick, no log line, nothing (the adversarial suite's "serves another
 * user's request for the same job id while the attacker holds theirs" lost that race about
 * one run in two).
 *
 * Through setpriv, the daemon's child execs setpriv while still root, which no user may
 * signal, so spawn returns at once; setpriv then takes the user's uid and gid, with no
 * supplementary group (as the uid/gid options did), and execs the program. The user may stop
 * setpriv or the program from then on: that holds up the one request that awaits it (with a
 * bound: the rm's 10 minutes, the stat's 30 s), never the daemon. setpriv is named by its absolute path, never looked up in a PATH
 * (the restart engine's environment is the user's: their PATH must not choose what root runs).
 */

/** util-linux's setpriv (Debian's util-linux is essential: always installed). */
export const SETPRIV = '/usr/bin/setpriv';

export interface UserCredentials {
  uid: number;
  gid: number;
}

/** The argv that runs ARGV (ARGV[0] looked up in the child's PATH) as USER: its uid, its gid, no other group. */
export function asUserArgv(user: UserCredentials, argv: readonly string[]): [string, ...string[]] {
  return [SETPRIV, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...argv];
}
