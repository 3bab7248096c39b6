/**
 * The adversarial suite's scene, shared by its files (test/e2e/security-*.e2e.test.ts, one per
 * attack family): a REAL root bin/ckpt-daemon (criu engine; the prlimit shim where root lacks
 * CAP_SYS_RESOURCE) and two non-root accounts made for the suite, an attacker and a victim.
 * Every attack is made by the attacker's own processes (their uid and gid, no root help); root
 * only sets the scene (the victim's job cpuset as OAR makes it, root's own images). Each case
 * asserts the daemon's verdict (its log line and reason) AND that the victim (process, files,
 * folder, /etc, cgroup) is untouched, and prints one line for the README:
 *   security: <attack> → refused: "<the daemon's reason>", victim untouched
 * Every wait is on the daemon's log or on a condition, with a bound. See SECURITY.md for the
 * threat model. In CI the suite runs (criu is installed if missing); elsewhere, without root or
 * criu, it is skipped loudly.
 *
 * The scene's parts are exported bindings, set by the suite's beforeAll: a test reads them
 * when it runs, after the scene is set.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseDaemonReport } from '../../src/protocol/daemon-report.js';
import { waitUntil } from './poll.js';
import { criuForUsers, criuReady, realPartAvailable, type Probe } from './real-parts.js';
import { SecurityDaemon, type Verdict } from './security-daemon.js';
import {
  killStarted, makeSecuritySandbox, removeCpusets, requestAs, requestAsRoot, trackProcess, userFolder, userProcess, type SecuritySandbox,
} from './security-fixtures.js';
import { asUser, createUser, killProcessesOf, removeUser, shAsUser, type SuiteUser } from './security-users.js';
import { ensureBuilt } from './build.js';

/** The victim's name starts with the attacker's and "_": OAR's cpuset names (<user>_<job id>) must not confuse them. */
export const ATTACKER = 'ckptsec';
export const VICTIM = 'ckptsec_v';

/** criu (installed in CI if missing, as scripts/test-all.sh does) and a way to dump other users' processes. */
const securityReady: Probe = () => {
  const problem = criuReady({ withPrlimitShim: true })();
  if (problem !== undefined) return problem;
  return criuForUsers() ? undefined : 'root lacks CAP_SYS_RESOURCE and the prlimit shim is missing (bash scripts/install-criu.sh --with-prlimit-shim)';
};

const results: string[] = [];
export function report(attack: string, outcome: string): void {
  const line = `security: ${attack} → ${outcome}`;
  results.push(line);
  console.log(line);
}
export const refused = (verdict: Verdict, victim = 'victim untouched'): string => `refused: "${verdict.reason}", ${victim}`;

/** One file's state as the victim sees it (not its ctime, which a hard link made by anyone changes). */
export function fileState(path: string): string {
  const stats = lstatSync(path);
  return `${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)} nlink=${stats.nlink} ${stats.size} ${stats.mtimeMs} ${readFileSync(path, 'utf8')}`;
}

/** DIR/dump_failed or DIR/restore_failed: the daemon writes it right after its log line. */
export const daemonReport = async (dir: string, name: 'dump_failed' | 'restore_failed'): Promise<string | undefined> => {
  await waitUntil(() => existsSync(join(dir, name)), `${dir}/${name}`);
  return parseDaemonReport(readFileSync(join(dir, name), 'utf8'))?.reason;
};

export const exited = (child: ChildProcess): Promise<unknown> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));

export let attacker: SuiteUser;
export let victim: SuiteUser;
export let box: SecuritySandbox;
export let daemon: SecurityDaemon;
/** The victim's running job, its run folder, and a request-shaped file of theirs in the shared folder. */
export let victimJob: number;
export let victimRun: string;
export let victimRequest: string;
let suiteStarted = 0;

export const home = (...names: string[]): string => join(box.home(attacker), ...names);
export const attackerFolder = (name: string): string => userFolder(attacker, home(name));
/** A process of the attacker's own (a legitimate target). */
export const ownProcess = async (): Promise<number> => (await userProcess(attacker, ['sleep', '1000'], 'sleep')).pid;
/** The request NAME, written by the attacker. */
export const attack = (name: string, body: string): void => requestAs(attacker, box.spool, name, body);
/** A previous checkpoint in DIR, for the daemon to remove first (as the user): 20 000 files make it take a while. */
export const oldCheckpoint = (dir: string): void => {
  const code = "const fs = require('fs'); const d = process.argv[1] + '/checkpoint.old'; fs.mkdirSync(d); for (let i = 0; i < 20000; i++) fs.writeFileSync(d + '/pages-' + i + '.img', '');";
  asUser(attacker, [process.execPath, '-e', code, dir]);
};
/** The daemon's image key, in a folder of root's in the suite's sandbox (never /etc). */
export const imageKeyPath = (): string => join(box.rootDir, 'image-key', 'image.key');
/** Root dumps ARGV (started by root, possibly through setpriv) into a folder of root's; returns the dumped PID. */
export const rootImages = async (name: string, argv: string[], comm: string, beforeDump?: (pid: number) => void): Promise<{ pid: number; run: string }> => {
  const run = join(box.rootDir, name);
  execFileSync('mkdir', ['-m', '700', run]);
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: 'ignore' });
  const pid = trackProcess(child.pid as number);
  await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm, `${argv.join(' ')} to run ${comm}`);
  beforeDump?.(pid);
  requestAsRoot(box.spool, `${name}.checkpoint`, `${pid}\n${run}\n`);
  const dump = await daemon.verdict(name);
  expect(dump.outcome, dump.line).toBe('done');
  await exited(child); // reaped: its PID is free for the restore
  return { pid, run };
};

async function setUp(): Promise<void> {
  suiteStarted = Date.now();
  ensureBuilt();
  attacker = createUser(ATTACKER);
  victim = createUser(VICTIM);
  box = makeSecuritySandbox([attacker, victim]);
  daemon = await SecurityDaemon.start({
    spool: box.spool,
    logPath: join(box.base, 'daemon.log'),
    criu: criuForUsers() as string,
    imageKey: imageKeyPath(),
  });
  victimRun = userFolder(victim, join(box.home(victim), 'run'));
  shAsUser(victim, 'echo "a week of results" > "$1/results.dat"', victimRun);
  victimJob = (await userProcess(victim, ['sleep', '1000'], 'sleep')).pid;
  // A request-shaped file of the victim's, world-writable by mistake: the victim's own PID and folder.
  victimRequest = join(box.shared, 'victim-request');
  shAsUser(victim, 'printf "%s" "$1" > "$2" && chmod 666 "$2"', `${victimJob}\n${victimRun}\n`, victimRequest);
}

async function tearDown(): Promise<void> {
  killStarted();
  for (const user of [attacker, victim]) if (user) killProcessesOf(user);
  const code = await daemon?.stop();
  for (const user of [attacker, victim]) if (user) removeUser(user);
  const leftovers = removeCpusets();
  if (box) rmSync(box.base, { recursive: true, force: true });
  if (results.length) console.log(`\nckpt-daemon security (${Math.round((Date.now() - suiteStarted) / 1000)} s):\n${results.join('\n')}`);
  expect(leftovers).toEqual([]);
  if (daemon) expect(code).toBe(0);
}

/** One attack family of the adversarial suite: its own scene (users, daemon, victim's job), set up and torn down around BODY. */
export function adversarialSuite(family: string, body: () => void): void {
  describe.runIf(realPartAvailable(`the adversarial suite against the root ckpt-daemon (${family})`, securityReady))(`ckpt-daemon (root, real CRIU) against a hostile user: ${family}`, () => {
    beforeAll(setUp);
    afterAll(tearDown);
    body();
  });
}
