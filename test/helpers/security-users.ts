/**
 * The non-root accounts of the adversarial suite (root only): created for the suite, removed
 * after it with every process they still run. Everything an attacker does goes through
 * `asUser`, i.e. a real process with the user's uid and gid and no other group.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { killAll } from '../../src/proc/processes.js';
import { processesWhere, procText } from './listed-processes.js';
import { addAccount, removeAccount } from './test-user.js';

export interface SuiteUser {
  name: string;
  uid: number;
  gid: number;
  /** Whether this suite created the account (and so removes it). */
  created: boolean;
}

const idOf = (flag: string, name: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());

/** Marks the accounts this suite makes, so that one left by an aborted run is known as ours. */
const COMMENT = 'ckpt-run security suite';

/** Creates the account NAME (no home, no login shell); one an aborted run of this suite left is reused. */
export function createUser(name: string): SuiteUser {
  let entry = '';
  try {
    entry = execFileSync('getent', ['passwd', name], { encoding: 'utf8' });
  } catch {
    addAccount(name, ['--user-group', '--comment', COMMENT]);
  }
  const created = entry === '' || entry.split(':')[4] === COMMENT;
  return { name, uid: idOf('-u', name), gid: idOf('-g', name), created };
}

/** The PIDs of every process that runs with UID (real uid), from /proc. */
export function processesOf(uid: number): number[] {
  return processesWhere((pid) => Number(/^Uid:\s+(\d+)/m.exec(procText(pid, 'status') ?? '')?.[1]) === uid);
}

/** SIGKILLs every process of the account, one by one by PID, until none is left (bounded). */
export function killProcessesOf(user: SuiteUser): void {
  for (let round = 0; round < 50; round++) {
    const pids = processesOf(user.uid);
    if (pids.length === 0) break;
    killAll(pids, 'SIGKILL');
    // A bounded retry: SIGKILLed processes leave /proc asynchronously.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

/** Removes the account (with its processes) if this suite created it. */
export function removeUser(user: SuiteUser): void {
  killProcessesOf(user);
  if (user.created) removeAccount(user.name);
}

const userEnv = (user: SuiteUser): NodeJS.ProcessEnv => ({
  PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
  HOME: '/',
  USER: user.name,
  LOGNAME: user.name,
  LANG: 'C',
});

/** Runs ARGV as USER (uid, gid, no supplementary group), waits, returns its stdout. Throws on failure. */
export function asUser(user: SuiteUser, argv: string[], input?: string): string {
  return execFileSync(argv[0], argv.slice(1), {
    uid: user.uid,
    gid: user.gid,
    env: userEnv(user),
    cwd: '/',
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** A shell script run as USER: `sh -c SCRIPT sh ARGS...` (arguments stay out of the script text). */
export function shAsUser(user: SuiteUser, script: string, ...args: string[]): string {
  return asUser(user, ['sh', '-c', script, 'sh', ...args]);
}

/**
 * Starts ARGV as USER in a session of its own (the root of a tree a job would run). A tree to
 * be dumped needs quiet stdio: Node's pipes are unix sockets, which criu will not dump.
 */
export function spawnAsUser(user: SuiteUser, argv: string[], options: { cwd?: string; quiet?: boolean } = {}): ChildProcess {
  return spawn(argv[0], argv.slice(1), {
    uid: user.uid,
    gid: user.gid,
    env: userEnv(user),
    cwd: options.cwd ?? '/',
    detached: true,
    stdio: options.quiet ? 'ignore' : ['ignore', 'pipe', 'pipe'],
  });
}
