/**
 * An ordinary user's job whose program forks all the time (a shell loop: ~100 short-lived
 * children a second), checkpointed again and again through the root daemon on real CRIU, as on
 * a cluster. The daemon's checks read /proc of a tree whose children come and go, and a frozen
 * tree holds zombies (children exited, not yet reaped): neither may fail a checkpoint. The
 * second half runs beside busy loops, as on a shared node.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCpuLoad, type CpuLoad } from '../helpers/cpu-load.js';
import { counted, makeUserSandbox, Proc, ROOT, runCkpt, type Sandbox } from '../helpers/launcher-harness.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { criuForUser, criuReady, realPartAvailable } from '../helpers/real-parts.js';
import { ensureTestUser, type TestUser } from '../helpers/test-user.js';

const SHELL_LOOP = join(ROOT, 'test/e2e/forking/shell-loop.sh');
const CHECKPOINTS = 25;
const LINES = 900;
/** New lines each job prints before its checkpoint signal: every job runs its program a while. */
const LINES_PER_JOB = 15;
/** A resume whose PIDs were still held by the dumped tree (init reaps slowly here) exits 99 to try again: bounded. */
const RETRIES = 5;

describe.runIf(realPartAvailable('a forking job on real CRIU', criuReady({ withPrlimitShim: true })))('an ordinary user\'s forking job through the root daemon', () => {
  let sandbox: Sandbox;
  let daemon: RealDaemon;
  let user: TestUser;
  let load: CpuLoad | undefined;

  beforeAll(async () => {
    user = ensureTestUser();
    sandbox = makeUserSandbox('ckpt-forking-e2e-', user);
    daemon = await RealDaemon.start({ spool: sandbox.spool, logPath: join(sandbox.dir, 'daemon.log'), criu: criuForUser(), imageKey: join(sandbox.dir, 'key', 'image.key') });
  });

  afterAll(async () => {
    load?.stop();
    expect(await daemon?.stop()).toBe(0);
  });

  it(`${CHECKPOINTS} checkpoints in a row of a shell loop, the second half under CPU load: each succeeds, every line once, the program's exit code`, async () => {
    const args = (n: number) => ['--job-id', `fork-${n}`, '--run-id', 'fork', '--min-runtime', '0', '--', SHELL_LOOP, String(LINES), '42'];
    const jobs: Proc[] = [];
    let retries = 0;
    for (let checkpoint = 1; checkpoint <= CHECKPOINTS; ) {
      if (checkpoint === Math.ceil(CHECKPOINTS / 2) && !load) load = startCpuLoad(2);
      const job = runCkpt(sandbox, args(jobs.length + 1), {}, user);
      jobs.push(job);
      const before = counted(jobs.map((j) => j.stdout).join('')).length;
      await job.waitFor(
        (p) => counted(p.stdout).length >= LINES_PER_JOB || p.child.exitCode !== null,
        `job ${jobs.length} (checkpoint ${checkpoint}) to print ${LINES_PER_JOB} lines after ${before}`,
        60_000,
      );
      if (job.child.exitCode !== null) {
        // Only a resume may end before its signal, and only to be tried again.
        expect(job.child.exitCode, `job ${jobs.length} ended on its own before checkpoint ${checkpoint}:\n${job.stderr}`).toBe(99);
        expect(job.stderr, `job ${jobs.length}`).not.toMatch(/program restored as PID/);
        expect(++retries, `resumes tried again:\n${job.stderr}`).toBeLessThanOrEqual(RETRIES);
        continue;
      }
      job.child.kill('SIGUSR2');
      expect(await job.exitCode(60_000), `checkpoint ${checkpoint} (job ${jobs.length}):\n${job.stderr}\n--- daemon ---\n${daemon.tail()}`).toBe(99);
      expect(job.stderr, `checkpoint ${checkpoint}`).toMatch(/checkpoint complete in/);
      checkpoint++;
    }
    load?.stop();
    let exitCode: number | null = 99;
    while (exitCode === 99 && retries <= RETRIES) {
      const job = runCkpt(sandbox, args(jobs.length + 1), {}, user);
      jobs.push(job);
      exitCode = await job.exitCode(120_000);
      if (exitCode === 99) retries++;
    }
    const stderr = jobs.map((job, index) => `--- job ${index + 1} ---\n${job.stderr}`).join('\n');
    const failures = daemon.lines().filter((line) => /failed|refus/i.test(line));
    console.log(`real CRIU, forking job as ${user.name}: ${CHECKPOINTS} checkpoints, ${jobs.length} jobs (${retries} resumes tried again), exit ${exitCode}; daemon failures: ${failures.length}`);
    expect(failures, stderr).toEqual([]);
    expect(exitCode, stderr).toBe(42);
    expect(counted(jobs.map((job) => job.stdout).join(''))).toEqual(Array.from({ length: LINES }, (_, k) => k + 1));
    expect(counted(readFileSync(join(sandbox.workdir, '.ckpt-run', 'fork', 'stdout.log'), 'utf8'))).toHaveLength(LINES);
  }, 900_000);
});
