/**
 * Crash recovery on real CRIU: a job checkpointed every two seconds (--interval, dumps that leave
 * the program running) is SIGKILLed whole (ckpt-run, its program, a restored tree: all at once,
 * as a node's crash or OAR's kill of the job's cgroup would) three times at random points; each
 * next job resumes the last complete checkpoint with the program's files cut back to it. The run
 * must end as an uninterrupted one: the same stdout and the same results file, byte for byte
 * (the results file is opened O_APPEND, whose size CRIU never checks), and the program's exit code.
 * Every job is an ordinary user's, through the root daemon, as on a cluster.
 *
 * Then files changed in place: each job killed between two checkpoints at several points, each
 * next job resumes with the files the program held open put back as they were at the checkpoint
 * (the content the daemon kept while the tree was frozen). Three programs: a SQLite database (a
 * row and the progress row per transaction), an HDF5 dataset updated in place, a scratch file
 * held open and replaced now and then. Each run must end as an uninterrupted one: the program's
 * exit code, its stdout, and its file (sqlite3's dump, h5dump, bytes). And a file past the
 * daemon's --keep-files-max, changed after the checkpoint, is named before the resume, which is
 * refused.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeOf } from '../../src/proc/processes.js';
import { runDirFor, runDirPaths } from '../../src/protocol/run-dir.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { CKPT_RUN, makeUserSandbox, Proc, ROOT, runCkpt, type Sandbox } from '../helpers/launcher-harness.js';
import { waitUntil } from '../helpers/poll.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { criuForUser, criuReady, realPartAvailable, type Probe } from '../helpers/real-parts.js';
import { killAll } from '../helpers/listed-processes.js';
import { ensureTestUser, type TestUser } from '../helpers/test-user.js';
import { ensureBuilt } from '../helpers/build.js';

const STEPS_PROGRAM = join(ROOT, 'test/e2e/crash/steps.py');
const STEPS = 300;
const CRASHES = 3;

const python: Probe = () => (spawnSync('python3', ['--version']).status === 0 ? undefined : 'no python3');
/** Debian's python3: its sqlite3 and h5py (python3-h5py), whatever python3 a PATH finds first. */
const PYTHON = '/usr/bin/python3';
const CRASH = join(ROOT, 'test/e2e/crash');
/**
 * The steps each job's program does after its last checkpoint before the job is killed: early,
 * middle, late in IN_PLACE_INTERVAL (a step is ~45 ms here, ~90 steps an interval; each count
 * must stay well under one, since the next checkpoint starts it again). Counted, not timed: on a
 * loaded node a fixed delay may pass before a single step, and a crash with nothing to roll back
 * proves nothing.
 */
const CRASH_AFTER_STEPS = [12, 25, 40];
/** The in-place programs' --interval (s): room for the counts above even where a step is twice as slow. */
const IN_PLACE_INTERVAL = '4';
/** Each daemon-kept checkpoint may write this much: the three programs' files fit, the big file does not. */
const KEEP_MAX = 1 << 20;

const tools: Probe = () => {
  if (spawnSync(PYTHON, ['-c', 'import sqlite3, h5py']).status !== 0) return `no ${PYTHON} with sqlite3 and h5py (Debian: python3-h5py)`;
  return spawnSync('h5dump', ['--version']).status === 0 ? undefined : 'no h5dump (Debian: hdf5-tools)';
};

/** How each program's file is compared: its logical content where a library writes it, else its bytes. */
const dumpOf: Record<string, (path: string) => string> = {
  sqlite: (path) => execFileSync(PYTHON, ['-c', 'import sqlite3, sys; print("\\n".join(sqlite3.connect(sys.argv[1]).iterdump()))', path], { encoding: 'utf8' }),
  hdf5: (path) => execFileSync('h5dump', [path], { encoding: 'utf8' }).replace(/^HDF5 "[^"]*"/, 'HDF5'),
  scratch: (path) => readFileSync(path).toString('hex'),
};

const ready: Probe = () => criuReady({ withPrlimitShim: true })() ?? python() ?? tools();

describe.runIf(realPartAvailable('crash recovery on real CRIU', ready))('crash recovery on real CRIU: periodic checkpoints, whole job SIGKILLed', () => {
  let sandbox: Sandbox;
  let daemon: RealDaemon;
  let user: TestUser;

  beforeAll(async () => {
    ensureBuilt();
    // An ordinary user's job through the root daemon, as on a cluster.
    user = ensureTestUser();
    sandbox = makeUserSandbox('ckpt-crash-e2e-', user);
    daemon = await RealDaemon.start({
      spool: sandbox.spool,
      logPath: join(sandbox.dir, 'daemon.log'),
      criu: criuForUser(),
      imageKey: join(sandbox.dir, 'image-key', 'image.key'),
      verbose: true,
      // The in-place programs' files fit; the big file does not. The O_APPEND results file is never kept.
      extraArgs: ['--keep-files-max', String(KEEP_MAX)],
    });
  });

  afterAll(async () => {
    expect(await daemon?.stop()).toBe(0);
    if (sandbox) rmSync(sandbox.dir, { recursive: true, force: true });
  });

  /**
   * Every process of the job, as its cgroup holds them: ckpt-run's tree and the tree the daemon
   * restored for it (not ckpt-run's child; its PID as the job logged it: a periodic checkpoint
   * since has replaced the images folder that held the pidfile).
   */
  function jobProcesses(job: Proc): number[] {
    const restored = [...job.stderr.matchAll(/program restored as PID (\d+)/g)].at(-1)?.[1];
    const roots = [job.child.pid as number, ...(restored ? [Number(restored)] : [])];
    return roots.flatMap((root) => treeOf(root));
  }

  async function killJob(job: Proc, what: string): Promise<void> {
    expect(job.child.exitCode, `${what} ended before its crash:\n${job.stderr}`).toBeNull();
    const victims = jobProcesses(job);
    killAll(victims, 'SIGKILL');
    await waitUntil(() => victims.every(isGone), `${what}'s processes to die`, 10_000);
  }

  /**
   * Kills JOB once its program has written STEPS lines to the run's stdout file LOG since the
   * last checkpoint the job completed (or since its restore). The file, not the job's relay: a
   * resumed job first relays what the crashed one had not, lines from before the checkpoint.
   * Lines are counted from the moment a completion shows in the job's log, so each counted line
   * came after that checkpoint's freeze; a checkpoint that completes meanwhile starts the count again.
   */
  async function crashAfterSteps(job: Proc, log: string, steps: number, what: string): Promise<void> {
    const lines = (): number => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').length - 1 : 0);
    const checkpoints = (): number => job.stderr.match(/periodic checkpoint complete/g)?.length ?? 0;
    let mark = { checkpoints: checkpoints(), lines: lines() };
    await job.waitFor(() => {
      if (checkpoints() !== mark.checkpoints) mark = { checkpoints: checkpoints(), lines: lines() };
      return lines() - mark.lines >= steps;
    }, `${what}: ${steps} steps after its last checkpoint`, 60_000);
    await killJob(job, what);
  }

  it(`survives ${CRASHES} SIGKILLs of the whole job at random points: stdout and results file byte-identical, exit code 7`, async () => {
    // The uninterrupted run, for reference.
    const reference = join(sandbox.dir, 'reference');
    execFileSync('mkdir', ['-p', reference]);
    const plain = spawnSync('python3', [STEPS_PROGRAM, String(STEPS), join(reference, 'results.txt')], { encoding: 'utf8' });
    expect(plain.status).toBe(7);

    const paths = runDirPaths(runDirFor(sandbox.workdir, 'crash'));
    const results = join(sandbox.workdir, 'results.txt');
    const args = (n: number) => ['--job-id', `crash-${n}`, '--run-id', 'crash', '--min-runtime', '0', '--interval', '2', '--', 'python3', STEPS_PROGRAM, String(STEPS), results];
    const jobs: Proc[] = [];
    const delays: number[] = [];
    for (let crash = 1; crash <= CRASHES; crash++) {
      const job = runCkpt(sandbox, args(crash), {}, user);
      jobs.push(job);
      // The first job crashes only once a checkpoint exists; the others at any point once their program runs.
      if (crash === 1) await job.waitFor((p) => /periodic checkpoint complete/.test(p.stderr), 'the first periodic checkpoint', 60_000);
      else await job.waitFor((p) => /program restored as PID/.test(p.stderr), `job ${crash}'s restore`, 60_000);
      const delay = Math.round(Math.random() * 4000);
      delays.push(delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
      expect(job.child.exitCode, `job ${crash} ended before its crash:\n${job.stderr}`).toBeNull();
      const victims = jobProcesses(job);
      killAll(victims, 'SIGKILL');
      await waitUntil(() => victims.every(isGone), `job ${crash}'s processes to die`, 10_000);
      const left = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(STEPS_PROGRAM));
      expect(left, `job ${crash}'s program outlived its job`).toEqual([]);
    }

    // Then jobs until one ends on its own (a resume that met a dump of a killed job finishing exits 99: one more).
    let exitCode: number | null = 99;
    for (let n = CRASHES + 1; exitCode === 99 && n <= CRASHES + 3; n++) {
      const job = runCkpt(sandbox, args(n), {}, user);
      jobs.push(job);
      exitCode = await job.exitCode(120_000);
    }
    const stderr = jobs.map((job, index) => `--- job ${index + 1} ---\n${job.stderr}`).join('\n');
    const rolledBack = jobs.filter((job) => /is rolled back: /.test(job.stderr)).length;
    const resultsRolledBack = jobs.filter((job) => /is rolled back: .*results\.txt/.test(job.stderr)).length;
    const periodic = stderr.match(/periodic checkpoint complete in [^\n]*/g) ?? [];
    console.log(
      `real CRIU crash recovery: ${CRASHES} SIGKILLs after [${delays.join(', ')}] ms, ${jobs.length} jobs, ` +
        `${periodic.length} periodic checkpoints (e.g. "${periodic[0]}"), files rolled back in ${rolledBack} resumes (results.txt in ${resultsRolledBack}), exit code ${exitCode}`,
    );
    expect(exitCode, stderr).toBe(7);
    expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(plain.stdout);
    expect(readFileSync(results, 'utf8')).toBe(readFileSync(join(reference, 'results.txt'), 'utf8'));
    // The program prints a line every 50 ms: a crash with nothing written since the checkpoint would need all three within 50 ms of one.
    expect(rolledBack, stderr).toBeGreaterThan(0);
    expect(jobs.at(-1)?.stdout.trim().split('\n').at(-1)).toBe(plain.stdout.trim().split('\n').at(-1));
  }, 600_000);

  it.each([
    ['sqlite', 'progress.db', 160],
    ['hdf5', 'data.h5', 160],
    ['scratch', 'grid.scratch', 200],
  ])('%s: killed between checkpoints 3 times, ends as an uninterrupted run (exit code, stdout, file)', async (name, file, steps) => {
    const program = join(CRASH, `${name}_steps.py`);
    const reference = join(sandbox.dir, `reference-${name}`);
    execFileSync('mkdir', ['-p', reference]);
    const plain = spawnSync(PYTHON, [program, String(steps), join(reference, file)], { encoding: 'utf8' });
    expect(plain.status, plain.stderr).toBe(7);

    const run = `inplace-${name}`;
    const paths = runDirPaths(runDirFor(sandbox.workdir, run));
    const target = join(sandbox.workdir, file);
    const args = (n: number) => ['--job-id', `${run}-${n}`, '--run-id', run, '--min-runtime', '0', '--interval', IN_PLACE_INTERVAL, '--', PYTHON, program, String(steps), target];
    const jobs: Proc[] = [];
    for (const [index, steps] of CRASH_AFTER_STEPS.entries()) {
      const job = runCkpt(sandbox, args(index + 1), {}, user);
      jobs.push(job);
      if (index === 0) await job.waitFor((p) => /periodic checkpoint complete/.test(p.stderr), 'the first periodic checkpoint', 60_000);
      else await job.waitFor((p) => /program restored as PID/.test(p.stderr), `job ${index + 1}'s restore`, 60_000);
      await crashAfterSteps(job, paths.stdoutLog, steps, `job ${index + 1}`);
    }
    let exitCode: number | null = 99;
    for (let n = CRASH_AFTER_STEPS.length + 1; exitCode === 99 && n <= CRASH_AFTER_STEPS.length + 3; n++) {
      const job = runCkpt(sandbox, args(n), {}, user);
      jobs.push(job);
      exitCode = await job.exitCode(120_000);
    }
    const stderr = jobs.map((job, index) => `--- job ${index + 1} ---\n${job.stderr}`).join('\n');
    const putBack = jobs.filter((job) => job.stderr.includes(`rolled back to the checkpoint: ${target}`)).length;
    const replaced = jobs.filter((job) => job.stderr.includes(`${target} (replaced after the checkpoint) is put back`)).length;
    console.log(`${name}: ${jobs.length} jobs, ${file} put back in ${putBack} resumes (replaced in ${replaced}); ${stderr.match(/periodic checkpoint complete in [^\n]*/)?.[0]}`);
    expect(exitCode, stderr).toBe(7);
    expect(readFileSync(paths.stdoutLog, 'utf8'), stderr).toBe(plain.stdout);
    expect(dumpOf[name](target)).toBe(dumpOf[name](join(reference, file)));
    expect(putBack, stderr).toBeGreaterThan(0);
    // The scratch file is replaced every 10 steps: each crash, 12 steps or more after a checkpoint, finds it replaced.
    if (name === 'scratch') expect(replaced, stderr).toBeGreaterThan(0);
  }, 300_000);

  it("the keep tool reads as the user: a file the job may write but not read is named, not kept; its own file comes back after a crash", async () => {
    // Root's, writable by others, readable by nobody else: root could copy it, the user may not.
    const drop = join(sandbox.workdir, 'secret.drop');
    writeFileSync(drop, 'root only\n', { mode: 0o602 });
    chmodSync(drop, 0o602);
    const reference = join(sandbox.dir, 'reference-user');
    execFileSync('mkdir', ['-p', reference]);
    const program = join(CRASH, 'user_steps.py');
    const plain = spawnSync(PYTHON, [program, '120', join(reference, 'own.bin'), drop], { encoding: 'utf8' });
    expect(plain.status, plain.stderr).toBe(7);
    const own = join(sandbox.workdir, 'own.bin');
    const paths = runDirPaths(runDirFor(sandbox.workdir, 'user-inplace'));
    const args = (n: number) => ['--job-id', `user-inplace-${n}`, '--run-id', 'user-inplace', '--min-runtime', '0', '--interval', '2', '--', PYTHON, program, '120', own, drop];
    const first = runCkpt(sandbox, args(1), {}, user);
    await first.waitFor((p) => /periodic checkpoint complete/.test(p.stderr), 'the first periodic checkpoint', 60_000);
    await crashAfterSteps(first, paths.stdoutLog, 20, "the user's job");
    expect(first.stderr).toContain(`${drop} is open for writing but you may not read it: its content is not kept`);
    // The bases were written by the user's keep tool, not by root (the run's end removes them with its images).
    const bases = join(paths.dir, 'kept-files');
    const owners = readdirSync(bases).map((name) => lstatSync(join(bases, name)).uid);
    expect(owners.length).toBeGreaterThan(0);
    expect(owners.every((uid) => uid === user.uid), String(owners)).toBe(true);
    const jobs = [first];
    let exitCode: number | null = 99;
    for (let n = 2; exitCode === 99 && n <= 4; n++) {
      const next = runCkpt(sandbox, args(n), {}, user);
      jobs.push(next);
      exitCode = await next.exitCode(120_000);
    }
    const stderr = jobs.map((one, index) => `--- job ${index + 1} ---\n${one.stderr}`).join('\n');
    expect(exitCode, stderr).toBe(7);
    expect(jobs[1].stderr, stderr).toContain(`rolled back to the checkpoint: ${own} is put back`);
    expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(plain.stdout);
    expect(readFileSync(own).equals(readFileSync(join(reference, 'own.bin')))).toBe(true);
  }, 180_000);

  it('names a file past --keep-files-max that changed after the checkpoint, and refuses the resume before the program runs', async () => {
    const big = join(sandbox.workdir, 'big.bin');
    // Holds a 2-MiB file open, rewrites its first bytes every 50 ms: each checkpoint records only its checksum.
    const writer = "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\nos.ftruncate(fd, 2 << 20)\nn = 0\nwhile True:\n    n += 1\n    os.pwrite(fd, n.to_bytes(8, 'little'), 0)\n    time.sleep(0.05)\n";
    writeFileSync(join(sandbox.workdir, 'big_writer.py'), writer);
    const args = (n: number) => ['--job-id', `big-${n}`, '--run-id', 'big', '--min-runtime', '0', '--interval', '2', '--', PYTHON, join(sandbox.workdir, 'big_writer.py'), big];
    const first = runCkpt(sandbox, args(1), {}, user);
    await first.waitFor((p) => /periodic checkpoint complete/.test(p.stderr), 'the first periodic checkpoint', 60_000);
    // Changed after the checkpoint: its counter moves on from what it was when the checkpoint completed.
    const counter = (): bigint => {
      const head = Buffer.alloc(8);
      const fd = openSync(big, 'r');
      try {
        readSync(fd, head, 0, 8, 0);
      } finally {
        closeSync(fd);
      }
      return head.readBigUInt64LE(0);
    };
    const atCheckpoint = counter();
    await waitUntil(() => counter() >= atCheckpoint + 5n, 'the big file to change 5 times after the checkpoint', 30_000, 20);
    await killJob(first, 'the big-file job');
    expect(first.stderr).toMatch(new RegExp(`over the bound.*${big}|${big}.*over the bound`));

    const second = runCkpt(sandbox, args(2), {}, user);
    const code = await second.exitCode(60_000);
    expect(code, second.stderr).toBe(15);
    expect(second.stderr).toContain(`${big} changed after the checkpoint and its content was not kept`);
    expect(second.stderr).not.toMatch(/program restored as PID/);
    // status tells why, instead of promising that the next job resumes the checkpoint.
    const status = execFileSync(process.execPath, [CKPT_RUN, 'status', sandbox.workdir], { encoding: 'utf8' });
    const line = status.split('\n').find((text) => text.startsWith('big:'));
    expect(line, status).toMatch(/^big: stopped: its last job refused to resume the checkpoint, .*big\.bin changed after the checkpoint/);
    expect(line).not.toMatch(/the next job resumes the last checkpoint/);
  }, 120_000);
});
