/**
 * The adversarial suite: a REAL root bin/ckpt-daemon (criu engine; the prlimit shim where root
 * lacks CAP_SYS_RESOURCE) and two non-root accounts made for the suite, an attacker and a
 * victim. Every attack is made by the attacker's own processes (their uid and gid, no root
 * help); root only sets the scene (the victim's job cpuset as OAR makes it, root's own images).
 * Each case asserts the daemon's verdict (its log line and reason) AND that the victim (process,
 * files, folder, /etc, cgroup) is untouched, and prints one line for the README:
 *   security: <attack> → refused: "<the daemon's reason>", victim untouched
 * Every wait is on the daemon's log or on a condition, with a bound. See SECURITY.md for the
 * threat model. In CI this suite runs (criu is installed if missing); elsewhere, without root or
 * criu, it is skipped loudly.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDaemonReport } from '../../src/protocol/daemon-report.js';
import { HALF_WRITTEN_GRACE_MS } from '../../src/daemon/spool.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { ROOT } from '../helpers/launcher-harness.js';
import { criuForUsers, criuReady, realPartAvailable, type Probe } from '../helpers/real-parts.js';
import { raceNewImages, stopRootHelper } from '../helpers/security-attacks.js';
import { SecurityDaemon, type Verdict } from '../helpers/security-daemon.js';
import {
  cgroupProcs, commOf, createJobCpuset, etcSnapshot, fingerprint, handImagesTo, killStarted, makeSecuritySandbox, removeCpusets, requestAs, requestAsRoot,
  snapshot, trackProcess, userFolder, userProcess, type SecuritySandbox,
} from '../helpers/security-fixtures.js';
import { asUser, createUser, killProcessesOf, processesOf, removeUser, shAsUser, type SuiteUser } from '../helpers/security-users.js';

/** The victim's name starts with the attacker's and "_": OAR's cpuset names (<user>_<job id>) must not confuse them. */
const ATTACKER = 'ckptsec';
const VICTIM = 'ckptsec_v';

/** criu (installed in CI if missing, as scripts/test-all.sh does) and a way to dump other users' processes. */
const securityReady: Probe = () => {
  const problem = criuReady({ withPrlimitShim: true })();
  if (problem !== undefined) return problem;
  return criuForUsers() ? undefined : 'root lacks CAP_SYS_RESOURCE and the prlimit shim is missing (bash scripts/install-criu.sh --with-prlimit-shim)';
};

const results: string[] = [];
function report(attack: string, outcome: string): void {
  const line = `security: ${attack} → ${outcome}`;
  results.push(line);
  console.log(line);
}
const refused = (verdict: Verdict, victim = 'victim untouched'): string => `refused: "${verdict.reason}", ${victim}`;

/** One file's state as the victim sees it (not its ctime, which a hard link made by anyone changes). */
function fileState(path: string): string {
  const stats = lstatSync(path);
  return `${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)} nlink=${stats.nlink} ${stats.size} ${stats.mtimeMs} ${readFileSync(path, 'utf8')}`;
}

/** DIR/dump_failed or DIR/restore_failed: the daemon writes it right after its log line. */
const daemonReport = async (dir: string, name: 'dump_failed' | 'restore_failed'): Promise<string | undefined> => {
  await waitUntil(() => existsSync(join(dir, name)), `${dir}/${name}`);
  return parseDaemonReport(readFileSync(join(dir, name), 'utf8'))?.reason;
};

const exited = (child: ChildProcess): Promise<unknown> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));

describe.runIf(realPartAvailable('the adversarial suite against the root ckpt-daemon', securityReady))('ckpt-daemon (root, real CRIU) against a hostile user', () => {
  let attacker: SuiteUser;
  let victim: SuiteUser;
  let box: SecuritySandbox;
  let daemon: SecurityDaemon;
  /** The victim's running job, its run folder, and a request-shaped file of theirs in the shared folder. */
  let victimJob: number;
  let victimRun: string;
  let victimRequest: string;
  const suiteStarted = Date.now();

  const home = (...names: string[]): string => join(box.home(attacker), ...names);
  const attackerFolder = (name: string): string => userFolder(attacker, home(name));
  /** A process of the attacker's own (a legitimate target). */
  const ownProcess = async (): Promise<number> => (await userProcess(attacker, ['sleep', '1000'], 'sleep')).pid;
  /** The request NAME, written by the attacker. */
  const attack = (name: string, body: string): void => requestAs(attacker, box.spool, name, body);
  /** A previous checkpoint in DIR, for the daemon to remove first (as the user): 20 000 files make it take a while. */
  const oldCheckpoint = (dir: string): void => {
    const code = "const fs = require('fs'); const d = process.argv[1] + '/checkpoint.old'; fs.mkdirSync(d); for (let i = 0; i < 20000; i++) fs.writeFileSync(d + '/pages-' + i + '.img', '');";
    asUser(attacker, [process.execPath, '-e', code, dir]);
  };
  /** The daemon's image key, in a folder of root's in the suite's sandbox (never /etc). */
  const imageKeyPath = (): string => join(box.rootDir, 'image-key', 'image.key');
  /** Root dumps ARGV (started by root, possibly through setpriv) into a folder of root's; returns the dumped PID. */
  const rootImages = async (name: string, argv: string[], comm: string, beforeDump?: (pid: number) => void): Promise<{ pid: number; run: string }> => {
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

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-p', ROOT], { stdio: 'pipe' });
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
  });

  afterAll(async () => {
    killStarted();
    for (const user of [attacker, victim]) if (user) killProcessesOf(user);
    const code = await daemon?.stop();
    for (const user of [attacker, victim]) if (user) removeUser(user);
    const leftovers = removeCpusets();
    if (box) rmSync(box.base, { recursive: true, force: true });
    if (results.length) console.log(`\nckpt-daemon security (${Math.round((Date.now() - suiteStarted) / 1000)} s):\n${results.join('\n')}`);
    expect(leftovers).toEqual([]);
    if (daemon) expect(code).toBe(0);
  });

  // --- the target process -------------------------------------------------------------------

  it("refuses a checkpoint of another user's process", async () => {
    const dir = attackerFolder('run-victim-pid');
    const [process0, folder0] = [fingerprint(victimJob), snapshot(victimRun)];
    attack('sec-victim-pid.checkpoint', `${victimJob}\n${dir}\n`);
    const verdict = await daemon.verdict('sec-victim-pid');
    const v = victim.uid;
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`process ${victimJob} (in the tree of PID ${victimJob}) runs as uid ${v}/${v}/${v}/${v}, unlike ${ATTACKER}'s own processes`);
    expect(fingerprint(victimJob)).toEqual(process0);
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(await daemonReport(dir, 'dump_failed')).toBe(verdict.reason);
    expect(readdirSync(dir)).toEqual(['dump_failed']);
    report("checkpoint of another user's PID", refused(verdict));
  });

  it('refuses a checkpoint of PID 1', async () => {
    const dir = attackerFolder('run-pid1');
    const init0 = fingerprint(1);
    attack('sec-pid1.checkpoint', `1\n${dir}\n`);
    const verdict = await daemon.verdict('sec-pid1');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe("PID 1 (the node's init) is never dumped");
    expect(fingerprint(1)).toEqual(init0);
    report('checkpoint of PID 1', refused(verdict, 'init untouched'));
  });

  it('refuses a checkpoint of the daemon itself', async () => {
    const dir = attackerFolder('run-daemon');
    const daemon0 = fingerprint(daemon.pid);
    attack('sec-daemon.checkpoint', `${daemon.pid}\n${dir}\n`);
    const verdict = await daemon.verdict('sec-daemon');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`PID ${daemon.pid} is the daemon itself`);
    expect(fingerprint(daemon.pid)).toEqual(daemon0);
    report('checkpoint of the daemon itself', refused(verdict, 'daemon untouched'));
  });

  it('refuses a checkpoint of a process that became root between the checks and the dump (exec of a setuid program)', async () => {
    const dir = attackerFolder('run-setuid');
    oldCheckpoint(dir);
    shAsUser(attacker, 'mkfifo "$1/go"', dir);
    // The attacker's own process, which runs a setuid-root program (as passwd or su would) on a signal.
    const target = (await userProcess(attacker, ['sh', '-c', 'read x < "$1"; exec "$2" 1000', 'sh', join(dir, 'go'), box.suidSleep], 'sh')).pid;
    // The daemon removes checkpoint.old with an rm running as the attacker, after its checks: the
    // attacker stops that rm, turns the checked process into a root one, and lets the rm go on.
    const stopped = stopRootHelper(attacker, daemon.pid);
    attack('sec-setuid.checkpoint', `${target}\n${dir}\n`);
    const helper = await stopped;
    shAsUser(attacker, 'echo go > "$1"', join(dir, 'go'));
    await waitUntil(() => /^Uid:\s+\d+\s+0\s+0\s+0$/m.test(readFileSync(`/proc/${target}/status`, 'utf8')), 'the target to run the setuid program');
    asUser(attacker, ['kill', '-CONT', String(helper)]);
    const verdict = await daemon.verdict('sec-setuid');
    const a = attacker.uid;
    expect(verdict.outcome, verdict.line).toBe('failed');
    expect(verdict.reason).toBe(`dumped process ${target} runs as uid ${a} 0 0 0, not as uid ${a}; the dump is discarded`);
    // No image of the root process reached the attacker; it runs on, resumed by criu.
    expect(await daemonReport(dir, 'dump_failed')).toBe(verdict.reason);
    expect(readdirSync(dir).sort()).toEqual(['dump_failed', 'go']);
    expect(fingerprint(target)).toMatchObject({ stopped: 'false', uid: `${a}\t0\t0\t0` });
    report('checkpoint of own process that execs a setuid-root program after the checks (window held open by SIGSTOPping the daemon\'s rm)', refused(verdict, 'no image of the root process handed over'));
  });

  // --- the run folder -----------------------------------------------------------------------

  it("refuses a request whose folder belongs to another user", async () => {
    const own = await ownProcess();
    const [own0, folder0] = [fingerprint(own), snapshot(victimRun)];
    attack('sec-victim-dir.checkpoint', `${own}\n${victimRun}\n`);
    const verdict = await daemon.verdict('sec-victim-dir');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`folder ${victimRun} belongs to uid ${victim.uid}, not to ${ATTACKER} (uid ${attacker.uid})`);
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(fingerprint(own)).toEqual(own0);
    report("request whose DIR is another user's folder", refused(verdict));
  });

  it("refuses a request whose folder is reached through a symlink (to the victim's folder)", async () => {
    const link = home('link-to-victim');
    shAsUser(attacker, 'ln -s "$1" "$2"', victimRun, link);
    const own = await ownProcess();
    const folder0 = snapshot(victimRun);
    attack('sec-dir-link.checkpoint', `${own}\n${link}\n`);
    const verdict = await daemon.verdict('sec-dir-link');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`folder ${link} is reached through a symlink or an indirect path (it is ${victimRun})`);
    expect(snapshot(victimRun)).toEqual(folder0);
    report("request whose DIR is a symlink to another user's folder", refused(verdict));
  });

  it('refuses a checkpoint and a resume whose DIR/checkpoint is a symlink to /etc', async () => {
    const dir = attackerFolder('run-etc');
    shAsUser(attacker, 'ln -s /etc "$1/checkpoint"', dir);
    const own = await ownProcess();
    const [etc0, own0] = [etcSnapshot(), fingerprint(own)];
    attack('sec-etc.checkpoint', `${own}\n${dir}\n`);
    attack('sec-etc-resume.resume', `${dir}\n`);
    const dump = await daemon.verdict('sec-etc');
    const restore = await daemon.verdict('sec-etc-resume');
    for (const verdict of [dump, restore]) {
      expect(verdict.outcome, verdict.line).toBe('refused');
      expect(verdict.reason).toBe(`${dir}/checkpoint is not a directory (a symlink?)`);
    }
    expect(etcSnapshot()).toEqual(etc0);
    expect(fingerprint(own)).toEqual(own0);
    report('checkpoint whose DIR/checkpoint is a symlink to /etc', refused(dump, '/etc untouched'));
    report('resume whose DIR/checkpoint is a symlink to /etc', refused(restore, '/etc untouched'));
  });

  it('removes a DIR/checkpoint.old that is a symlink to /etc as the user: only the link goes', async () => {
    const dir = attackerFolder('run-old-etc');
    shAsUser(attacker, 'ln -s /etc "$1/checkpoint.old"', dir);
    const own = await ownProcess();
    const etc0 = etcSnapshot();
    attack('sec-old-etc.checkpoint', `${own}\n${dir}\n`);
    const verdict = await daemon.verdict('sec-old-etc');
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(etcSnapshot()).toEqual(etc0);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint', 'checkpoint_ok']);
    expect(statSync(join(dir, 'checkpoint')).uid).toBe(attacker.uid);
    report('checkpoint whose DIR/checkpoint.old is a symlink to /etc', 'served: the rm, run as the user, removed only the link; /etc untouched');
  });

  it("keeps DIR pinned when the attacker swaps it for a symlink to the victim's folder during the dump", async () => {
    const dir = attackerFolder('run-swap-dir');
    const big = (await userProcess(attacker, ['perl', '-e', '$x = "a" x (128 << 20); sleep 1000'], 'perl')).pid;
    await waitUntil(() => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${big}/status`, 'utf8'))?.[1]) > 128 * 1024, 'the 128 MB program');
    const folder0 = snapshot(victimRun);
    const race = raceNewImages(attacker, dir, 'swap-dir', victimRun);
    attack('sec-swap-dir.checkpoint', `${big}\n${dir}\n`);
    const swapped = await race;
    expect(swapped, 'the swap must land while the daemon still dumps').toMatchObject({ newStillThere: true, okAlready: false });
    const verdict = await daemon.verdict('sec-swap-dir', { timeoutMs: 60_000 });
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(readlinkSync(dir)).toBe(victimRun);
    expect(readdirSync(`${dir}-moved`).sort()).toEqual(['checkpoint', 'checkpoint_ok']);
    report("DIR swapped for a symlink to another user's folder while criu dumps", 'served in the pinned folder (where DIR was moved), the symlink never followed; victim untouched');
  });

  it('keeps the new images pinned when the attacker swaps checkpoint.new-* for a symlink to /etc during the dump', async () => {
    const dir = attackerFolder('run-swap-new');
    const big = (await userProcess(attacker, ['perl', '-e', '$x = "a" x (128 << 20); sleep 1000'], 'perl')).pid;
    await waitUntil(() => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${big}/status`, 'utf8'))?.[1]) > 128 * 1024, 'the 128 MB program');
    const etc0 = etcSnapshot();
    const race = raceNewImages(attacker, dir, 'swap-new', '/etc');
    attack('sec-swap-new.checkpoint', `${big}\n${dir}\n`);
    const swapped = await race;
    expect(swapped.okAlready, 'the swap must land while the daemon still dumps').toBe(false);
    const dump = await daemon.verdict('sec-swap-new', { timeoutMs: 60_000 });
    expect(dump.outcome, dump.line).toBe('done');
    // The daemon renamed the attacker's symlink (not /etc) to "checkpoint"; the images stayed where they were written.
    expect(readlinkSync(join(dir, 'checkpoint'))).toBe('/etc');
    expect(readdirSync(join(dir, 'decoy'))).toContain('pages-1.img');
    expect(statSync(join(dir, 'decoy')).uid).toBe(attacker.uid);
    attack('sec-swap-new-resume.resume', `${dir}\n`);
    const restore = await daemon.verdict('sec-swap-new-resume');
    expect(restore.outcome, restore.line).toBe('refused');
    expect(restore.reason).toBe(`${dir}/checkpoint is not a directory (a symlink?)`);
    expect(etcSnapshot()).toEqual(etc0);
    report('checkpoint.new-* swapped for a symlink to /etc while criu dumps, then resumed', `served into the pinned folder, only the link renamed; resume ${refused(restore, '/etc untouched')}`);
  });

  // --- images -------------------------------------------------------------------------------

  it("refuses root's real images handed to the user as they are (signed for root): refused before criu runs", async () => {
    const marker = join(box.rootDir, 'marker-asis');
    const { pid, run } = await rootImages('sec-img-asis', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > "$1"; done', 'sh', marker], 'sh');
    const marker0 = fileState(marker);
    const dir = attackerFolder('run-img-asis');
    handImagesTo(attacker, run, dir);
    attack('sec-img-asis-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-img-asis-resume');
    expect(verdict.outcome, verdict.line).not.toBe('done');
    expect(verdict.reason).toMatch(/^images not made by this cluster's ckpt-daemon, or changed since: the signature .* does not match the images \(.*made for another user/);
    expect(isGone(pid)).toBe(true);
    expect(fileState(marker)).toBe(marker0);
    expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
    report("resume of root's real images handed to the user as they are (signed for root)", refused(verdict, 'criu never ran, the process never came back'));
  });

  it('refuses to restore images whose credentials say uid 0 (root\'s real images): the tree is killed before it runs', async () => {
    const marker = join(box.rootDir, 'marker');
    const { pid, run } = await rootImages('sec-img-uid0', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > "$1"; done', 'sh', marker], 'sh');
    const marker0 = fileState(marker);
    const dir = attackerFolder('run-img-uid0');
    handImagesTo(attacker, run, dir, imageKeyPath());
    attack('sec-img-uid0-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-img-uid0-resume');
    expect(verdict.outcome, verdict.line).toBe('failed');
    expect(verdict.reason).toBe(`restored process ${pid} runs as uid 0 0 0 0, not as uid ${attacker.uid}; the restored tree is killed`);
    await waitUntil(() => isGone(pid), 'the refused tree to be dead');
    // The loop rewrites the marker at once whenever it runs: it never ran after the restore.
    expect(fileState(marker)).toBe(marker0);
    expect(await daemonReport(dir, 'restore_failed')).toBe(verdict.reason);
    expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
    expect(statSync(join(dir, 'checkpoint')).uid).toBe(attacker.uid);
    report("resume of root's real images handed to the user (credentials uid 0)", refused(verdict, 'the tree killed before running user code'));
  });

  const crafted: Array<{ name: string; what: string; argv: (a: SuiteUser) => string[]; reason: (pid: number, a: SuiteUser) => string }> = [
    {
      name: 'gid0',
      what: 'group 0',
      argv: (a) => ['setpriv', `--reuid=${a.uid}`, '--regid=0', '--clear-groups', 'sleep', '1000'],
      reason: (pid, a) => `restored process ${pid} has group 0, which uid ${a.uid} is not in; the restored tree is killed`,
    },
    {
      name: 'caps',
      what: 'a capability (CAP_NET_RAW)',
      argv: (a) => ['setpriv', `--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', '--inh-caps=+net_raw', '--ambient-caps=+net_raw', 'sleep', '1000'],
      reason: (pid) => `restored process ${pid} has capabilities (CapInh: 0000000000002000); the restored tree is killed`,
    },
    {
      name: 'rt',
      what: 'real-time scheduling (SCHED_FIFO)',
      argv: (a) => ['chrt', '--fifo', '10', 'setpriv', `--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', 'sleep', '1000'],
      reason: (pid) => `restored process ${pid} has the real-time scheduling policy 1 (priority 10); the restored tree is killed`,
    },
    {
      name: 'nice',
      what: 'a negative nice (-10)',
      argv: (a) => ['nice', '-n', '-10', 'setpriv', `--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', 'sleep', '1000'],
      reason: (pid) => `restored process ${pid} has nice -10; the restored tree is killed`,
    },
  ];
  for (const { name, what, argv, reason } of crafted) {
    it(`refuses to restore images whose process has ${what}`, async () => {
      const { pid, run } = await rootImages(`sec-img-${name}`, argv(attacker), 'sleep');
      const dir = attackerFolder(`run-img-${name}`);
      handImagesTo(attacker, run, dir, imageKeyPath());
      attack(`sec-img-${name}-resume.resume`, `${dir}\n`);
      const verdict = await daemon.verdict(`sec-img-${name}-resume`);
      expect(verdict.outcome, verdict.line).toBe('failed');
      expect(verdict.reason).toBe(reason(pid, attacker));
      await waitUntil(() => isGone(pid), 'the refused tree to be dead');
      expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
      report(`resume of images crafted with ${what}`, refused(verdict, 'the tree killed before running user code'));
    });
  }

  it("refuses to restore images that put the tree into another user's OAR job cgroup", async () => {
    const job = String(800_000 + (process.pid % 100_000));
    const cpuset = createJobCpuset(VICTIM, job);
    const { pid, run } = await rootImages('sec-img-cgroup', ['setpriv', `--reuid=${attacker.uid}`, `--regid=${attacker.gid}`, '--clear-groups', 'sleep', '1000'], 'sleep', (target) =>
      writeFileSync(join(cpuset, 'cgroup.procs'), `${target}\n`),
    );
    await waitUntil(() => cgroupProcs(cpuset).length === 0, 'the dumped process to leave the cpuset');
    const dir = attackerFolder('run-img-cgroup');
    handImagesTo(attacker, run, dir, imageKeyPath());
    attack('sec-img-cgroup-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-img-cgroup-resume');
    expect(verdict.outcome, verdict.line).toBe('failed');
    expect(verdict.reason).toBe(`restored process ${pid} is in the cgroup /oar/${VICTIM}_${job} (cpuset), not in a job of ${ATTACKER}; the restored tree is killed`);
    await waitUntil(() => isGone(pid), 'the refused tree to be dead');
    expect(cgroupProcs(cpuset)).toEqual([]);
    report("resume of images whose cgroups are another user's OAR job (its memory and CPUs)", refused(verdict, "the victim's job cgroup left empty"));
  });

  it("refuses a resume whose checkpoint folder holds other people's files, and gives none of them away", async () => {
    // A project folder everyone may write (not sticky), with a file and a folder of the victim's
    // and a root-only file an admin left there: the attacker may move them, not read or own them.
    shAsUser(victim, 'echo "the victim\'s notes" > "$1/victim-notes" && chmod 644 "$1/victim-notes" && mkdir -m 777 "$1/victim-folder"', box.shared);
    writeFileSync(join(box.shared, 'root-secret'), 'root only\n', { mode: 0o600 });
    const owners = (where: string): string[] =>
      ['victim-notes', 'victim-folder', 'root-secret'].map((name) => {
        const stats = lstatSync(join(where, name));
        return `${name} ${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)} ${stats.isFile() ? readFileSync(join(where, name), 'utf8') : 'folder'}`;
      });
    const before = owners(box.shared);
    const dir = attackerFolder('run-theft');
    shAsUser(attacker, 'mkdir "$1/checkpoint" && mv "$2/victim-notes" "$2/victim-folder" "$2/root-secret" "$1/checkpoint/"', dir, box.shared);
    attack('sec-theft.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-theft');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toMatch(new RegExp(`^checkpoint/(victim-notes|victim-folder|root-secret) is not a plain file of ${ATTACKER} `));
    expect(owners(join(dir, 'checkpoint'))).toEqual(before);
    expect(statSync(join(dir, 'checkpoint')).uid).toBe(attacker.uid);
    report("resume of a checkpoint folder holding another user's file and folder and a root-only file", refused(verdict, 'their owners and modes unchanged'));
  });

  it("refuses images the daemon did not make or that changed since (files.img forged to open root's file with O_TRUNC) before criu runs; its own images still resume", async () => {
    const dir = attackerFolder('run-forge');
    const held = join(dir, 'held-file');
    // Root's canary, at a path as long as the attacker's file: the forged files.img stays well-formed.
    const canaryPrefix = join(box.rootDir, 'canary-');
    const canary = canaryPrefix + 'x'.repeat(held.length - canaryPrefix.length);
    writeFileSync(canary, 'root data\n', { mode: 0o600 });
    const canary0 = fileState(canary);
    const { pid, child } = await userProcess(attacker, ['sh', '-c', 'exec 3>>"$1"; exec sleep 1000', 'sh', held], 'sleep');
    attack('sec-forge.checkpoint', `${pid}\n${dir}\n`);
    const dump = await daemon.verdict('sec-forge');
    expect(dump.outcome, dump.line).toBe('done');
    await exited(child); // reaped: its PID is free for the restore
    const images = join(dir, 'checkpoint');
    expect(readdirSync(images)).toContain('ckpt-daemon.sig');
    shAsUser(attacker, 'cp -p "$1/files.img" "$1/ckpt-daemon.sig" "$2/"', images, dir);
    // The attacker's forgery of their own images: root's canary instead of their file, and O_TRUNC
    // (0x200) added to its open flags (O_LARGEFILE|O_APPEND|O_WRONLY, varint 81 88 02 -> 81 8c 02).
    const forge = [
      "const fs = require('fs'); const [file, from, to] = process.argv.slice(1); const b = fs.readFileSync(file);",
      'const at = b.indexOf(from); if (at < 0) process.exit(3); b.write(to, at);',
      'const flags = b.lastIndexOf(Buffer.from([0x10, 0x81, 0x88, 0x02]), at); if (flags >= 0) b[flags + 2] = 0x8c;',
      "fs.writeFileSync(file, b); console.log(flags >= 0 ? 'O_TRUNC' : 'path only');",
    ].join(' ');
    const forged = asUser(attacker, [process.execPath, '-e', forge, join(images, 'files.img'), held, canary]).trim();
    attack('sec-forge-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-forge-resume');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(
      "images not made by this cluster's ckpt-daemon, or changed since: the signature in checkpoint/ckpt-daemon.sig does not match the images (a file was changed, added, removed or renamed, they were made for another user, or another key signed them)",
    );
    expect(await daemonReport(dir, 'restore_failed')).toBe(verdict.reason);
    expect(parseDaemonReport(readFileSync(join(dir, 'restore_failed'), 'utf8'))?.retryable).toBe(false);
    // criu never ran: root's file untouched, the tree not recreated.
    expect(fileState(canary)).toBe(canary0);
    expect(isGone(pid)).toBe(true);
    report(`resume of the user's own images with files.img forged (root's file, ${forged})`, refused(verdict, "criu never ran, root's file untouched"));

    // Images the daemon never signed: the legit files.img back, no signature.
    shAsUser(attacker, 'cp "$1/files.img" "$2/files.img" && rm "$2/ckpt-daemon.sig" "$1/restore_failed"', dir, images);
    attack('sec-unsigned-resume.resume', `${dir}\n`);
    const unsigned = await daemon.verdict('sec-unsigned-resume');
    expect(unsigned.outcome, unsigned.line).toBe('refused');
    expect(unsigned.reason).toBe("images not made by this cluster's ckpt-daemon, or changed since: no signature (checkpoint/ckpt-daemon.sig is missing)");
    expect(await daemonReport(dir, 'restore_failed')).toBe(unsigned.reason);
    expect(isGone(pid)).toBe(true);
    report('resume of images without the daemon\'s signature', refused(unsigned, 'criu never ran'));

    // The images as the daemon made them: resumed.
    shAsUser(attacker, 'cp "$1/ckpt-daemon.sig" "$2/" && rm "$1/restore_failed"', dir, images);
    attack('sec-legit-resume.resume', `${dir}\n`);
    const legit = await daemon.verdict('sec-legit-resume');
    expect(legit.outcome, legit.line).toBe('done');
    expect(Number(readFileSync(join(images, 'pidfile'), 'utf8'))).toBe(pid);
    expect(commOf(pid)).toBe('sleep');
    expect(fingerprint(pid).uid).toBe(`${attacker.uid}\t${attacker.uid}\t${attacker.uid}\t${attacker.uid}`);
    expect(fileState(canary)).toBe(canary0);
    report('resume of the same images as the daemon signed them', `done: "${legit.reason}"`);
  });

  // --- request files ------------------------------------------------------------------------

  it('refuses request files that are huge, binary, half-written, symlinks, FIFOs, hard links or folders', async () => {
    const [process0, folder0, file0] = [fingerprint(victimJob), snapshot(victimRun), fileState(victimRequest)];
    const spool = box.spool;
    shAsUser(attacker, 'cd "$1" && truncate -s 10G .huge && printf "\\n" >> .huge && mv .huge sec-huge.checkpoint', spool);
    shAsUser(attacker, 'cd "$1" && printf "1\\n/tmp\\000x\\n" > .binary && mv .binary sec-binary.checkpoint', spool);
    attack('sec-half.checkpoint', `${victimJob}\n/tm`);
    const halfWritten = Date.now();
    shAsUser(attacker, 'ln -s "$1" "$2/sec-symlink.checkpoint"', victimRequest, spool);
    shAsUser(attacker, 'mkfifo "$1/sec-fifo.checkpoint"', spool);
    shAsUser(attacker, 'ln "$1" "$2/sec-hardlink.checkpoint"', victimRequest, spool);
    shAsUser(attacker, 'mkdir "$1/sec-folder.checkpoint"', spool);
    const cases: Array<[string, string, string]> = [
      ['sec-huge.checkpoint', 'a huge (10 GiB, sparse) request file', `the request is ${10 * 2 ** 30 + 1} bytes, more than 8192`],
      ['sec-binary.checkpoint', 'a binary request file', 'binary content'],
      ['sec-symlink.checkpoint', "a request that is a symlink to a victim's request-shaped file", 'the request is a symlink'],
      ['sec-fifo.checkpoint', 'a request that is a FIFO', 'the request is a FIFO, not a regular file'],
      ['sec-hardlink.checkpoint', "a request that is a hard link to a victim's request-shaped file", 'the request file has other hard links (whose owner would it be?)'],
      ['sec-folder.checkpoint', 'a request that is a folder', 'the request is a directory, not a regular file'],
      ['sec-half.checkpoint', 'a half-written request never completed', 'no final newline (half-written?)'],
    ];
    for (const [name, what, reason] of cases) {
      const verdict = await daemon.spoolRefusal(name, 3 * HALF_WRITTEN_GRACE_MS + 10_000);
      expect(verdict.reason).toBe(reason);
      expect(existsSync(join(spool, name))).toBe(false);
      report(what, refused(verdict));
    }
    expect(Date.now() - halfWritten).toBeGreaterThanOrEqual(HALF_WRITTEN_GRACE_MS);
    expect(fingerprint(victimJob)).toEqual(process0);
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(fileState(victimRequest)).toBe(file0);
    expect(readdirSync(join(spool, '.ckpt-daemon'))).toEqual([]);
  });

  it('serves a legitimate request within a bound after a flood of 2000 junk requests', async () => {
    const flood = 2000;
    const code = `const fs = require('fs'); const c = require('crypto');
      for (let i = 0; i < ${flood}; i++) fs.writeFileSync(process.argv[1] + '/sec-flood-' + i + '.resume', (i % 2 ? 'junk ' : '\\0') + c.randomBytes(48).toString('base64') + '\\n');`;
    asUser(attacker, [process.execPath, '-e', code, box.spool]);
    const legitDir = userFolder(victim, join(box.home(victim), 'run-legit'));
    const legit = (await userProcess(victim, ['sleep', '1000'], 'sleep')).pid;
    const asked = Date.now();
    requestAs(victim, box.spool, 'sec-legit.checkpoint', `${legit}\n${legitDir}\n`);
    const verdict = await daemon.verdict('sec-legit', { timeoutMs: 30_000 });
    const servedIn = (Date.now() - asked) / 1000;
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(existsSync(join(legitDir, 'checkpoint_ok'))).toBe(true);
    const floodRefusals = (): string[] => daemon.lines().filter((line) => new RegExp(`warn: refused sec-flood-\\d+\\.resume from uid ${attacker.uid}: `).test(line));
    await waitUntil(() => floodRefusals().length === flood, `${flood} refusals of the flood`, 60_000);
    const reason = floodRefusals()[0].replace(/^.*?from uid \d+: /, '');
    expect(readdirSync(box.spool).filter((name) => name.startsWith('sec-flood-'))).toEqual([]);
    report(`a flood of ${flood} junk requests`, `each refused ("${reason.replace(/"[^"]*"/, '"…"')}", …); a victim's request written right after served in ${servedIn.toFixed(1)} s`);
    expect(servedIn).toBeLessThan(30);
  });

  // --- jobs ---------------------------------------------------------------------------------

  it("refuses a request naming another user's OAR job id", async () => {
    const job = String(810_000 + (process.pid % 100_000));
    const cpuset = createJobCpuset(VICTIM, job);
    const cpuset0 = snapshot(cpuset);
    const dir = attackerFolder('run-oar');
    const own = await ownProcess();
    const own0 = fingerprint(own);
    attack(`${job}.checkpoint`, `${own}\n${dir}\n`);
    const dump = await daemon.verdict(job, { kind: 'dump' });
    attack(`${job}.resume`, `${dir}\n`);
    const restore = await daemon.verdict(job, { kind: 'restore' });
    for (const verdict of [dump, restore]) {
      expect(verdict.outcome, verdict.line).toBe('refused');
      expect(verdict.reason).toBe(`OAR runs job ${job} for ${VICTIM}, but the request comes from ${ATTACKER}`);
    }
    expect(snapshot(cpuset)).toEqual(cpuset0);
    expect(cgroupProcs(cpuset)).toEqual([]);
    expect(fingerprint(own)).toEqual(own0);
    report("checkpoint request naming another user's OAR job id", refused(dump, "the victim's job cpuset untouched"));
    report("resume request naming another user's OAR job id", refused(restore, "the victim's job cpuset untouched"));
  });

  it("refuses a job id that makes OAR's cpuset names ambiguous (<attacker>_<v_JOB> = <victim>_<JOB>)", async () => {
    const job = String(820_000 + (process.pid % 100_000));
    const cpuset = createJobCpuset(VICTIM, job);
    const dir = attackerFolder('run-ambiguous');
    const own = await ownProcess();
    attack('sec-ambiguous.checkpoint', `${own}\n${dir}\n`);
    const dump = await daemon.verdict('sec-ambiguous');
    expect(dump.outcome, dump.line).toBe('done');
    const ambiguous = `${VICTIM.slice(ATTACKER.length + 1)}_${job}`;
    attack(`${ambiguous}.resume`, `${dir}\n`);
    const verdict = await daemon.verdict(ambiguous);
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`job id ${ambiguous} has a "_": OAR's cpuset ${VICTIM}_${job} may be another user's job`);
    expect(cgroupProcs(cpuset)).toEqual([]);
    expect(await daemonReport(dir, 'restore_failed')).toBe(verdict.reason);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint', 'checkpoint_ok', 'restore_failed']);
    report(`resume under job id "${ambiguous}" (${ATTACKER} + "_${ambiguous}" names ${VICTIM}'s job ${job} cpuset)`, refused(verdict, "the victim's job cpuset untouched"));
  });

  it("keeps a restored tree that forks the moment it resumes inside the new job's cgroups", async () => {
    const [oldJob, newJob] = [830_000, 840_000].map((base) => String(base + (process.pid % 100_000)));
    const dir = attackerFolder('run-escape');
    const flag = join(dir, 'resumed');
    // Once restored (the flag exists), the program detaches a process at once: the moment it
    // resumes, before the daemon could move the tree, the detached one would stay behind.
    const program = (await userProcess(attacker, ['sh', '-c', 'while [ ! -e "$1" ]; do :; done; setsid -f sleep 1001; exec sleep 1000', 'sh', flag], 'sh')).pid;
    const oldCpuset = createJobCpuset(ATTACKER, oldJob);
    writeFileSync(join(oldCpuset, 'cgroup.procs'), `${program}\n`); // as OAR starts a job
    attack(`${oldJob}.checkpoint`, `${program}\n${dir}\n`);
    const dump = await daemon.verdict(oldJob);
    expect(dump.outcome, dump.line).toBe('done');
    await waitUntil(() => cgroupProcs(oldCpuset).length === 0, 'the dumped job to be empty');
    rmdirSync(oldCpuset); // the job ended: OAR removes its cgroups
    const newCpuset = createJobCpuset(ATTACKER, newJob);
    shAsUser(attacker, 'touch "$1"', flag);
    attack(`${newJob}.resume`, `${dir}\n`);
    const restore = await daemon.verdict(newJob);
    expect(restore.outcome, restore.line).toBe('done');
    const detached = (): number | undefined =>
      processesOf(attacker.uid).find((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x001001\x00';
        } catch {
          return false;
        }
      });
    await waitUntil(() => detached() !== undefined && commOf(program) === 'sleep' && cgroupProcs(newCpuset).length === 2, 'the detached process, and the root running sleep');
    const cpusetOf = (pid: number): string => /^\d+:cpuset:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '';
    expect([program, detached() as number].map(cpusetOf)).toEqual([`/oar/${ATTACKER}_${newJob}`, `/oar/${ATTACKER}_${newJob}`]);
    expect(cgroupProcs(newCpuset).sort()).toEqual([program, detached() as number].sort());
    expect(existsSync(oldCpuset), "the dumped job's cpuset, which criu recreated, is removed").toBe(false);
    report('restored tree that detaches a process the moment it resumes (to outlive its OAR job)', "contained: moved into the new job's cpuset before it ran, the dumped job's recreated cpuset removed");
  });

  it("serves another user's request for the same job id while the attacker holds theirs", async () => {
    const dir = attackerFolder('run-same-job');
    oldCheckpoint(dir);
    const own = await ownProcess();
    const stopped = stopRootHelper(attacker, daemon.pid);
    attack('sec-same-job.checkpoint', `${own}\n${dir}\n`);
    const helper = await stopped;
    await waitUntil(() => !existsSync(join(box.spool, 'sec-same-job.checkpoint')), "the daemon to take the attacker's request");
    const victimDir = userFolder(victim, join(box.home(victim), 'run-same-job'));
    const victimProcess = (await userProcess(victim, ['sleep', '1000'], 'sleep')).pid;
    const asked = Date.now();
    requestAs(victim, box.spool, 'sec-same-job.checkpoint', `${victimProcess}\n${victimDir}\n`);
    const verdict = await daemon.verdict('sec-same-job', { match: `PID ${victimProcess} `, timeoutMs: 20_000 });
    const servedIn = (Date.now() - asked) / 1000;
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(fingerprint(helper).stopped).toBe('true'); // the attacker's request still waits
    asUser(attacker, ['kill', '-CONT', String(helper)]);
    const own1 = await daemon.verdict('sec-same-job', { match: `PID ${own} ` });
    expect(own1.outcome, own1.line).toBe('done');
    report("a victim's request under the job id of a request the attacker holds up (its rm SIGSTOPped)", `not held up: served in ${servedIn.toFixed(1)} s while the attacker's request waited`);
  });
});
