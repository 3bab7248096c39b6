/**
 * Crash recovery on real CRIU: a job checkpointed every two seconds (--interval, dumps that leave
 * the program running) is SIGKILLed whole (ckpt-run, its program, a restored tree: all at once,
 * as a node's crash or OAR's kill of the job's cgroup would) three times at random points; each
 * next job resumes the last complete checkpoint with the program's files cut back to it. The run
 * must end as an uninterrupted one: the same stdout and the same results file, byte for byte
 * (the results file is opened O_APPEND, whose size CRIU never checks), and the program's exit code.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeOf } from '../../src/proc/processes.js';
import { runDirFor, runDirPaths } from '../../src/protocol/run-dir.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { makeUserSandbox, Proc, ROOT, runCkpt, type Sandbox } from '../helpers/launcher-harness.js';
import { waitUntil } from '../helpers/poll.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { criuForUser, criuReady, realPartAvailable, type Probe } from '../helpers/real-parts.js';
import { killAll } from '../helpers/listed-processes.js';
import { ensureTestUser, type TestUser } from '../helpers/test-user.js';

const STEPS_PROGRAM = join(ROOT, 'test/e2e/crash/steps.py');
const STEPS = 300;
const CRASHES = 3;

const python: Probe = () => (spawnSync('python3', ['--version']).status === 0 ? undefined : 'no python3');
const ready: Probe = () => criuReady({ withPrlimitShim: true })() ?? python();

describe.runIf(realPartAvailable('crash recovery on real CRIU', ready))('crash recovery on real CRIU: periodic checkpoints, whole job SIGKILLed', () => {
  let sandbox: Sandbox;
  let daemon: RealDaemon;
  let user: TestUser;

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-p', ROOT], { stdio: 'pipe' });
    // An ordinary user's job through the root daemon, as on a cluster.
    user = ensureTestUser();
    sandbox = makeUserSandbox('ckpt-crash-e2e-', user);
    daemon = await RealDaemon.start({
      spool: sandbox.spool,
      logPath: join(sandbox.dir, 'daemon.log'),
      criu: criuForUser(),
      imageKey: join(sandbox.dir, 'image-key', 'image.key'),
      verbose: true,
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
    const restored = /program restored as PID (\d+)/.exec(job.stderr)?.[1];
    const roots = [job.child.pid as number, ...(restored ? [Number(restored)] : [])];
    return roots.flatMap((root) => treeOf(root));
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
});
