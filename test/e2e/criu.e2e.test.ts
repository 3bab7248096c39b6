/**
 * bin/ckpt-run and bin/ckpt-daemon on REAL CRIU (root): a stateful program through three
 * checkpoint/restore cycles, each in a new "job"; the `stress` tree of 11 processes; a program
 * that does not lead its session; the move into OAR's job cgroups; an ordinary user's job; and
 * a user who tries to get root's process dumped, or crafted root images restored. In CI this
 * suite runs (criu is installed if missing); elsewhere it is skipped loudly without root or criu.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDaemonReport } from '../../src/protocol/daemon-report.js';
import { formatRequest, requestPath, type SpoolRequest } from '../../src/protocol/spool-request.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { signAsTheDaemon } from '../helpers/daemon-harness.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { CKPT_RUN, makeSandbox, Proc, ROOT, runCkpt, type Sandbox } from '../helpers/launcher-harness.js';
import { criuForUsers, criuReady, realPartAvailable } from '../helpers/real-parts.js';
import { ensureTestUser } from '../helpers/test-user.js';
import { killAll, processesWhere, procLink, procText } from '../helpers/listed-processes.js';
import { ensureBuilt } from '../helpers/build.js';

const COUNTER = join(ROOT, 'examples/stateful-counter.mjs');
const COUNTER_SH = join(ROOT, 'examples/counter.sh');

/** Writes a request owned by OWNER: chowned under a hidden name, then renamed into the spool. */
function requestAs(spool: string, request: SpoolRequest, owner: { uid: number; gid: number }): void {
  const path = requestPath(spool, request.kind, request.jobId);
  const temp = join(spool, `.${request.jobId}.tmp`);
  writeFileSync(temp, formatRequest(request));
  chownSync(temp, owner.uid, owner.gid);
  renameSync(temp, path);
}

/** What /proc says of PID, for a wait that gave up on it. */
function procState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((line) => /^(State|PPid|TracerPid|SigPnd|ShdPnd):/.test(line)).join(', ');
  } catch {
    return `no /proc/${pid}`;
  }
}

/**
 * `sleep 1000`, returned once it runs sleep: a job asks for the dump of a running program, never
 * of a PID still between fork and exec. It leads a session of its own (as ckpt-run starts
 * programs) or, UNDER_SHELL, is the `prog &` of a shell that leads the session (a job script's):
 * never in the test runner's session, which in CI is session 0 (inherited from the container's
 * init, outside its PID namespace), and criu refuses to dump such a tree even with --shell-job.
 * STOPPED(): once the sleep is dead and reaped (its PID free for a restore), bounded.
 */
async function sleeper({ underShell }: { underShell: boolean }): Promise<{ child: ChildProcess; pid: number; stopped: () => Promise<void> }> {
  const child = underShell
    ? spawn('sh', ['-c', 'sleep 1000 >/dev/null & echo $!; wait'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] })
    : spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
  let reaped = false; // the shell exits once its wait has reaped the sleep
  child.once('exit', () => (reaped = true));
  const pid = underShell ? await new Promise<number>((resolve) => child.stdout?.once('data', (line) => resolve(Number(String(line))))) : (child.pid as number);
  await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n', `PID ${pid} to run sleep`);
  const stopped = () => waitUntil(() => reaped, () => `PID ${pid} to be dead and reaped after the dump (${procState(pid)})`);
  return { child, pid, stopped };
}

/** "job J: dump of PID … done in 0.163 s (114.7 MB)" → seconds, in log order. */
function daemonTimes(log: string, kind: 'dump' | 'restore', jobPrefix: string): number[] {
  const pattern = new RegExp(`job ${jobPrefix}[^:]*: ${kind} of .* done in (\\d+\\.\\d+) s`, 'g');
  return [...log.matchAll(pattern)].map((match) => Number(match[1]));
}

describe.runIf(realPartAvailable('ckpt-daemon on real CRIU', criuReady()))('ckpt-run + ckpt-daemon on real CRIU', () => {
  let sandbox: Sandbox;
  let daemon: RealDaemon;
  let daemonLogPath: string;
  let criu: string | undefined;
  const daemonLog = (): string => readFileSync(daemonLogPath, 'utf8');
  /** What a timed-out wait for the daemon shows: its log then, and what every criu was doing. */
  const daemonState = (what: string) => (): string => {
    const criuProcesses = execFileSync('ps', ['-eo', 'pid,ppid,stat,etimes,wchan:32,args'], { encoding: 'utf8' })
      .split('\n')
      .filter((line, index) => index === 0 || /criu/.test(line));
    return `${what}\n--- daemon log ---\n${daemonLog()}--- criu processes ---\n${criuProcesses.join('\n')}`;
  };
  /**
   * A real CRIU step of a small tree: well under a second here, but never a timing test. A
   * test's own timeout is above the sum of its steps, so that a stuck step says which and why.
   */
  const CRIU_STEP_MS = 60_000;
  const imageKeyPath = (): string => join(sandbox.dir, 'image-key', 'image.key');
  /** Waits for the daemon's answer in DIR: DONE, or its failure report, whose reason then fails the test at once. */
  const daemonAnswer = async (dir: string, done: string, failed: string, what: string): Promise<void> => {
    await waitUntil(() => existsSync(join(dir, done)) || existsSync(join(dir, failed)), daemonState(what), CRIU_STEP_MS);
    if (!existsSync(join(dir, done))) throw new Error(`${what} failed: ${parseDaemonReport(readFileSync(join(dir, failed), 'utf8'))?.reason}`);
  };
  const awaitDump = (dir: string): Promise<void> => daemonAnswer(dir, 'checkpoint_ok', 'dump_failed', 'the dump');
  const awaitRestore = (dir: string): Promise<void> => daemonAnswer(dir, 'checkpoint/pidfile', 'restore_failed', 'the restore');

  beforeAll(async () => {
    ensureBuilt();
    sandbox = makeSandbox('ckpt-criu-e2e-');
    chmodSync(sandbox.dir, 0o755);
    chmodSync(sandbox.spool, 0o1777);
    daemonLogPath = join(sandbox.dir, 'daemon.log');
    criu = criuForUsers();
    // The image key in a private folder of the sandbox's (the daemon creates it): never /etc.
    daemon = await RealDaemon.start({ spool: sandbox.spool, logPath: daemonLogPath, criu: criu ?? 'criu', imageKey: imageKeyPath(), verbose: true });
  });

  afterAll(async () => {
    expect(await daemon?.stop()).toBe(0);
  });

  it('three checkpoint/restore cycles of a program holding 100 MB: every line once, in order, memory intact, exit code 7', async () => {
    const count = 120;
    const perJob = 20;
    const args = ['--run-id', 'counter', '--min-runtime', '0', '--', process.execPath, COUNTER, String(count), '20', '100', '7'];
    const jobs: Proc[] = [];
    for (let cycle = 1; cycle <= 3; cycle++) {
      const job = runCkpt(sandbox, ['--job-id', `counter-${cycle}`, ...args]);
      jobs.push(job);
      await job.waitFor((p) => p.stdout.split('\n').length > perJob, `${perJob} lines in job ${cycle}`, 60_000);
      job.child.kill('SIGUSR2');
      await job.expectExit(99, 60_000);
    }
    const last = runCkpt(sandbox, ['--job-id', 'counter-4', ...args]);
    jobs.push(last);
    const exitCode = await last.exitCode(120_000);

    const lines = jobs.map((job) => job.stdout).join('').trim().split('\n').map((line) => line.split(' ').map(Number));
    const numbers = lines.map(([i]) => i);
    const duplicates = numbers.length - new Set(numbers).size;
    const gaps = Array.from({ length: count }, (_, k) => k + 1).filter((i) => !numbers.includes(i)).length;
    // The program's memory: words[j] = j * 2654435761 (mod 2^32), then i added at step i.
    let initial = 0;
    for (let j = 0; j < (100 * 1024 * 1024) / 4; j++) initial = (initial + (Math.imul(j, 2654435761) >>> 0)) >>> 0;
    const badChecksums = lines.filter(([i, sum]) => sum !== (initial + (i * (i + 1)) / 2) % 2 ** 32).length;
    const log = daemonLog();
    const dumps = daemonTimes(log, 'dump', 'counter');
    const restores = daemonTimes(log, 'restore', 'counter');
    console.log(
      `real CRIU, stateful counter (100 MB): cycles=3 lines=${numbers.length} duplicates=${duplicates} gaps=${gaps} ` +
        `bad checksums=${badChecksums} exit code=${exitCode}; dump s=[${dumps.join(', ')}] restore s=[${restores.join(', ')}]`,
    );
    expect(numbers).toEqual(Array.from({ length: count }, (_, k) => k + 1));
    expect(jobs.slice(1).map((job) => Number(job.stdout.split(' ')[0]))).toEqual(jobs.slice(0, -1).map((job) => Number(job.stdout.trim().split('\n').pop()?.split(' ')[0]) + 1));
    expect(badChecksums).toBe(0);
    expect(exitCode).toBe(7);
    expect([dumps.length, restores.length]).toEqual([3, 3]);
  }, 240_000);

  it('the stress tree (11 processes): dumped, restored, still 11 processes', async () => {
    try {
      execFileSync('stress', ['--version'], { stdio: 'pipe' });
    } catch {
      execFileSync('apt-get', ['install', '-y', '-qq', 'stress'], { stdio: 'pipe', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    }
    /** Live stress processes started in this sandbox (other tests may run stress elsewhere). */
    const stressTree = (): number[] =>
      processesWhere((pid) => procText(pid, 'comm') === 'stress\n' && procLink(pid, 'cwd') === sandbox.workdir && !isGone(pid));
    const args = ['--run-id', 'stress', '--min-runtime', '0', '--', 'stress', '--cpu', '4', '--io', '4', '--vm', '2'];
    const first = runCkpt(sandbox, ['--job-id', 'stress-1', ...args]);
    await waitUntil(() => stressTree().length === 11, 'stress and its 10 workers', 30_000);
    first.child.kill('SIGUSR2');
    await first.expectExit(99, 120_000);
    await waitUntil(() => stressTree().length === 0, 'the dumped stress tree to be gone');

    const second = runCkpt(sandbox, ['--job-id', 'stress-2', ...args]);
    try {
      await second.waitFor((p) => /program restored as PID \d+/.test(p.stderr), 'the restore', 120_000);
      const restored = stressTree().length;
      const log = daemonLog();
      console.log(`real CRIU, stress tree: processes before=11 after=${restored}; dump s=${daemonTimes(log, 'dump', 'stress')} restore s=${daemonTimes(log, 'restore', 'stress')}`);
      expect(restored).toBe(11);
    } finally {
      second.child.kill('SIGTERM');
      await second.exitCode(60_000);
    }
    await waitUntil(() => stressTree().length === 0, 'the stress tree to end with its job');
  }, 300_000);

  it('a program holding a file lock (as HDF5 and SQLite hold theirs): dumped, restored holding it again, every line once', async () => {
    const lockFile = join(sandbox.workdir, 'results.lock');
    writeFileSync(lockFile, '');
    /** Whether some process holds the lock: flock -n fails at once then. */
    const lockHeld = (): boolean => spawnSync('flock', ['-n', lockFile, 'true']).status === 1;
    const args = ['--run-id', 'locked', '--min-runtime', '0', '--', 'flock', lockFile, COUNTER_SH, '40', '0.05', '5'];
    const first = runCkpt(sandbox, ['--job-id', 'locked-1', ...args]);
    await first.waitFor((p) => p.stdout.split('\n').length > 5, '5 lines', 30_000);
    expect(lockHeld()).toBe(true);
    first.child.kill('SIGUSR2');
    await first.expectExit(99, 60_000);
    // The dumped tree is gone, and its lock with it (its last process may die a moment after the root).
    await waitUntil(() => !lockHeld(), "the dumped tree's lock to be released");

    const second = runCkpt(sandbox, ['--job-id', 'locked-2', ...args]);
    await second.waitFor((p) => /program restored as PID \d+/.test(p.stderr), 'the restore', 60_000);
    const heldAfterRestore = lockHeld();
    const exitCode = await second.exitCode(60_000);
    const numbers = (first.stdout + second.stdout).trim().split('\n').map(Number);
    console.log(`real CRIU, file lock: held before the dump=true, after the restore=${heldAfterRestore}; lines=${numbers.length} exit code=${exitCode}`);
    expect(heldAfterRestore).toBe(true);
    expect(numbers).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
    expect(exitCode).toBe(5);
  }, 180_000);

  it("dumps and restores a program that does not lead its session (a job script's `prog &`), with --shell-job", async () => {
    const dir = join(sandbox.dir, 'shell-job');
    mkdirSync(dir);
    const { pid, stopped } = await sleeper({ underShell: true });
    requestAs(sandbox.spool, { kind: 'checkpoint', jobId: 'shell-1', pid, dir }, { uid: 0, gid: 0 });
    await awaitDump(dir);
    await stopped();
    expect(readdirSync(join(dir, 'checkpoint'))).toContain('ckpt-daemon-shell-job');
    requestAs(sandbox.spool, { kind: 'resume', jobId: 'shell-2', dir }, { uid: 0, gid: 0 });
    await awaitRestore(dir);
    const restored = Number(readFileSync(join(dir, 'checkpoint', 'pidfile'), 'utf8'));
    try {
      expect(restored).toBe(pid);
      expect(isGone(restored)).toBe(false);
    } finally {
      killAll([restored], 'SIGKILL');
    }
  }, 180_000);

  it("moves a restored tree into the new job's OAR cgroups and removes the dumped job's, which criu recreated", async () => {
    const controllers = ['cpuset', 'cpu'];
    const [dumpedJob, newJob] = [`cg${process.pid}a`, `cg${process.pid}b`];
    const cgroup = (controller: string, job: string): string => `/sys/fs/cgroup/${controller}/oar/root_${job}`;
    /**
     * What OAR's job resource manager does at a job's start (cpuset: CPU 0, memory node 0). /oar,
     * made here when no OAR job ran yet, gets all of the node's CPUs and memory as OAR gives it:
     * with CPU 0 alone, the local OAR cluster's next job on CPU 1 fails (CPUSET_ERROR, seen).
     */
    const createJobCgroups = (job: string): void => {
      for (const controller of controllers) {
        for (const dir of [`/sys/fs/cgroup/${controller}/oar`, cgroup(controller, job)]) {
          if (!existsSync(dir)) mkdirSync(dir);
          if (controller !== 'cpuset') continue;
          for (const file of ['cpuset.cpus', 'cpuset.mems']) {
            const all = dir.endsWith('/oar') ? readFileSync(join(dir, '..', file), 'utf8').trim() : '0';
            if (readFileSync(join(dir, file), 'utf8').trim() === '') writeFileSync(join(dir, file), all);
          }
        }
      }
    };
    const removeJobCgroups = (job: string): void => {
      for (const controller of controllers) if (existsSync(cgroup(controller, job))) rmdirSync(cgroup(controller, job));
    };
    const dir = join(sandbox.dir, 'cgroups');
    mkdirSync(dir);
    createJobCgroups(dumpedJob);
    const { child: program, pid, stopped } = await sleeper({ underShell: false });
    let restored: number | undefined;
    try {
      for (const controller of controllers) writeFileSync(join(cgroup(controller, dumpedJob), 'cgroup.procs'), `${pid}\n`);
      requestAs(sandbox.spool, { kind: 'checkpoint', jobId: dumpedJob, pid, dir }, { uid: 0, gid: 0 });
      await awaitDump(dir);
      await stopped();
      removeJobCgroups(dumpedJob); // the job ended
      createJobCgroups(newJob);
      requestAs(sandbox.spool, { kind: 'resume', jobId: newJob, dir }, { uid: 0, gid: 0 });
      await awaitRestore(dir);
      restored = Number(readFileSync(join(dir, 'checkpoint', 'pidfile'), 'utf8'));
      const membership = readFileSync(`/proc/${restored}/cgroup`, 'utf8');
      console.log(`real CRIU, job cgroups after the restore:\n${membership.trim()}`);
      for (const controller of controllers) {
        expect(membership).toMatch(new RegExp(`^\\d+:${controller}:/oar/root_${newJob}$`, 'm'));
        expect(existsSync(cgroup(controller, dumpedJob))).toBe(false);
      }
    } finally {
      if (restored) killAll([restored], 'SIGKILL');
      program.kill('SIGKILL');
      await waitUntil(() => !restored || isGone(restored), 'the restored program to end');
      removeJobCgroups(dumpedJob);
      removeJobCgroups(newJob);
    }
  }, 180_000);

  it("an ordinary user's job: checkpointed and restored by the root daemon, which waits for the dumped PIDs to be reaped", async (context) => {
    if (!criu) {
      console.warn(`\n*** SKIPPED the user's job on real CRIU: root lacks CAP_SYS_RESOURCE and the prlimit shim is missing (bash scripts/install-criu.sh --with-prlimit-shim) ***\n`);
      context.skip();
    }
    const user = ensureTestUser();
    const workdir = join(sandbox.dir, 'user-work');
    mkdirSync(workdir);
    chownSync(workdir, user.uid, user.gid);
    const count = 60;
    const job = (jobId: string): Proc =>
      new Proc(spawn(process.execPath, [CKPT_RUN, '--spool-dir', sandbox.spool, '--job-id', jobId, '--min-runtime', '0', '--', process.execPath, COUNTER, String(count), '20', '20', '7'], {
        cwd: workdir,
        uid: user.uid,
        gid: user.gid,
        env: { ...process.env, OAR_JOB_ID: '', OAR_ARRAY_ID: '', CKPT_SPOOL_DIR: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }));
    const jobs = [job('user-1')];
    await jobs[0].waitFor((p) => p.stdout.split('\n').length > 10, '10 lines', 30_000);
    jobs[0].child.kill('SIGUSR2');
    expect(await jobs[0].exitCode(60_000)).toBe(99);
    // The daemon handed its images over: the folder and every file in it are the user's.
    const images = join(workdir, '.ckpt-run', 'default', 'checkpoint');
    expect([images, ...readdirSync(images).map((name) => join(images, name))].filter((path) => lstatSync(path).uid !== user.uid)).toEqual([]);
    // Without a PID namespace (root only) the dumped PIDs linger until init reaps them. The daemon
    // waits for that (10 s at most); past it, "Can't fork … File exists" is retryable: exit 99 again.
    let exitCode: number | null = 99;
    while (exitCode === 99 && jobs.length < 20) {
      const next = job(`user-${jobs.length + 1}`);
      jobs.push(next);
      exitCode = await next.exitCode(60_000);
    }
    const numbers = jobs.map((j) => j.stdout).join('').trim().split('\n').map((line) => Number(line.split(' ')[0]));
    const retries = jobs.length - 2;
    const restores = daemonTimes(daemonLog(), 'restore', 'user');
    console.log(
      `real CRIU, user ${user.name}: lines=${numbers.length} duplicates=${numbers.length - new Set(numbers).size} ` +
        `resubmissions for a PID in use=${retries} exit code=${exitCode}; restore s=[${restores.join(', ')}]`,
    );
    expect(exitCode).toBe(7);
    expect(numbers).toEqual(Array.from({ length: count }, (_, k) => k + 1));
    // The run finished: the user's own ckpt-run removed the images, which no job will resume.
    expect(jobs.at(-1)?.stderr).toMatch(/the run finished: removed its checkpoint images \([\d.]+ MB; --keep-images keeps them\)/);
    expect(readdirSync(join(workdir, '.ckpt-run', 'default')).filter((name) => name.startsWith('checkpoint'))).toEqual([]);
  }, 180_000);

  it("refuses a user's checkpoint of root's process, and a user's restore of images whose credentials say uid 0", async () => {
    const user = ensureTestUser();
    const userDir = join(sandbox.dir, 'user-run');
    const rootDir = join(sandbox.dir, 'root-run');
    mkdirSync(userDir);
    chownSync(userDir, user.uid, user.gid);
    mkdirSync(rootDir);
    const { pid, stopped: victimGone } = await sleeper({ underShell: false });

    requestAs(sandbox.spool, { kind: 'checkpoint', jobId: 'sec-1', pid, dir: userDir }, user);
    await waitUntil(() => existsSync(join(userDir, 'dump_failed')), daemonState("the daemon's refusal"), CRIU_STEP_MS);
    const dumpRefusal = parseDaemonReport(readFileSync(join(userDir, 'dump_failed'), 'utf8'))?.reason;
    expect(dumpRefusal).toBe(`process ${pid} (in the tree of PID ${pid}) runs as uid 0/0/0/0, unlike ${user.name}'s own processes`);
    expect(isGone(pid)).toBe(false);

    // Root's own checkpoint of its process: the images a user then passes off as theirs.
    requestAs(sandbox.spool, { kind: 'checkpoint', jobId: 'sec-2', pid, dir: rootDir }, { uid: 0, gid: 0 });
    await waitUntil(() => existsSync(join(rootDir, 'checkpoint_ok')), daemonState("root's dump"), CRIU_STEP_MS);
    await victimGone(); // reaped: its PID is free for the restore
    cpSync(join(rootDir, 'checkpoint'), join(userDir, 'checkpoint'), { recursive: true });
    // Signed for root, they would be refused before criu runs; re-signed for the user with the
    // daemon's key (as if it had leaked), they reach the check of the restored processes.
    signAsTheDaemon(join(userDir, 'checkpoint'), user.uid, readFileSync(imageKeyPath()));
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, join(userDir, 'checkpoint')]);

    requestAs(sandbox.spool, { kind: 'resume', jobId: 'sec-3', dir: userDir }, user);
    await waitUntil(() => existsSync(join(userDir, 'restore_failed')), daemonState("the daemon's answer to the crafted restore"), CRIU_STEP_MS);
    const restoreRefusal = parseDaemonReport(readFileSync(join(userDir, 'restore_failed'), 'utf8'))?.reason;
    console.log(`real CRIU, security: user checkpoint of root's PID refused: "${dumpRefusal}"; crafted uid-0 images refused: "${restoreRefusal}"`);
    expect(restoreRefusal).toBe(`restored process ${pid} runs as uid 0 0 0 0, not as uid ${user.uid}; the restored tree is killed`);
    await waitUntil(() => isGone(pid), 'the refused tree to be dead');
    expect(existsSync(join(userDir, 'checkpoint', 'pidfile'))).toBe(false);
    expect(statSync(join(userDir, 'checkpoint')).uid).toBe(user.uid);
  }, 240_000);
});
