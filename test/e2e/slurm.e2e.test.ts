/**
 * ckpt-run on a REAL Slurm 22.05 cluster (scripts/slurm-local.sh, one node) with ckpt-daemon on
 * real CRIU, as users run it: examples/slurm-job.sh submitted with sbatch by a non-root user.
 *   a. `scancel --batch --signal=USR2`: dump, ckpt-run requeues the job itself (scontrol
 *      requeue), Slurm runs it again under the same id, which resumes and finishes with the
 *      program's exit code; the output file (--open-mode=append) has every line once;
 *   b. a job that may not be requeued (--no-requeue): exit 12, the checkpoint kept;
 *   c. a job submitted without --open-mode=append: Slurm truncates its output file at the
 *      requeue; the requeued ckpt-run says so, and the whole output is in the run folder;
 *   d. Slurm's own signal before the time limit (--signal=B:USR2@60), beside a to c.
 * Slurm makes a requeued job wait before it is eligible, for the lifetime of the ended run's
 * job credential (AuthInfo cred_expire): 120 s by default, 10 s on the local cluster.
 * Root only; in CI it always runs (Slurm and CRIU are installed if missing).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted, readOr } from '../helpers/launcher-harness.js';
import { ensureOarUser, type OarUser } from '../helpers/oar-cluster.js';
import { pollFor } from '../helpers/poll.js';
import { prepareSchedulerNode, type SchedulerNode } from '../helpers/oar-node.js';
import type { RealDaemon } from '../helpers/real-daemon.js';
import { IN_CI, realPartAvailable } from '../helpers/real-parts.js';
import { asUser, cancelUnfinished, sbatch, SLURM_FINAL_STATES, slurmJob, slurmProbe, startSlurm, stopSlurm } from '../helpers/slurm-cluster.js';

const USER = 'ckptoar';
/**
 * d: a counter longer than a run gets before Slurm's signal (time limit 2 min, signal 60 s before
 * it, seen 29 to 57 s into a run): two or three runs.
 */
const D = { count: 80, code: 43 };
/** The states of a job that has ended (a running one may also show SIGNALING, REQUEUED, COMPLETING, …). */
const ended = (job: Record<string, string>): boolean => SLURM_FINAL_STATES.test(job.JobState);

describe.runIf(realPartAvailable('ckpt-run under a real Slurm', slurmProbe))('ckpt-run under a real Slurm 22.05 (slurm-local.sh) with ckpt-daemon on real CRIU', () => {
  let wasUp = true;
  let user: OarUser;
  let node: SchedulerNode | undefined;
  let pkg: string;
  let base: string;
  let daemon: RealDaemon;
  const jobs: number[] = [];

  /** A folder of the user's for one job, and examples/slurm-job.sh submitted from it. */
  const submit = (name: string, sbatchArgs: string[], program: string[]): { id: number; dir: string; output: string } => {
    const dir = join(base, name);
    mkdirSync(dir);
    chownSync(dir, user.uid, user.gid);
    const id = sbatch(user, dir, [...sbatchArgs, join(pkg, 'examples/slurm-job.sh'), ...program]);
    jobs.push(id);
    return { id, dir, output: join(dir, `ckpt-run.${id}.out`) };
  };
  const state = (id: number): string => `job ${id}: ${JSON.stringify(slurmJob(id))}`;
  const untilState = (id: number, wanted: (job: Record<string, string>) => boolean, what: string, timeoutMs: number) =>
    pollFor(() => {
      const job = slurmJob(id);
      return job && wanted(job) ? job : undefined;
    }, () => `${what} (${state(id)}; daemon log:\n${daemon.log()})`, timeoutMs, 250);
  const counter = (count: number, tick: number, code: number): string[] => [join(pkg, 'examples/counter.sh'), String(count), String(tick), String(code)];

  /** d runs beside a, b and c (two cores): Slurm's own signal comes about a minute into each run. */
  let chainD: Promise<{ job: { id: number; output: string }; done: Record<string, string> }>;

  beforeAll(async () => {
    wasUp = startSlurm();
    user = ensureOarUser(USER);
    node = await prepareSchedulerNode(user, 'slurm-e2e');
    ({ pkg, base, daemon } = node);
    chainD = (async () => {
      const job = submit('d', ['--time=2', '--signal=B:USR2@60'], counter(D.count, 1, D.code));
      const done = await untilState(job.id, ended, "the job's runs to end", 420_000);
      return { job, done };
    })();
    chainD.catch(() => undefined); // awaited by test d
  }, 300_000);

  afterAll(async () => {
    cancelUnfinished(user, jobs);
    await node?.tearDown();
    if (!wasUp) stopSlurm();
  }, 120_000);

  /**
   * Once LINES lines are out: the batch signal, the requeue ckpt-run asks for, the requeued job's
   * end; WHEN_RESTORED sees the restored program while it runs.
   */
  const checkpointAndRequeue = async (job: { id: number; output: string }, lines: number, whenRestored?: (pid: number) => void) => {
    await pollFor(() => (counted(readOr(job.output)).length >= lines ? true : undefined), () => `${lines} lines in ${job.output} (${state(job.id)})`, 60_000, 200);
    asUser(user, ['scancel', '--batch', '--signal=USR2', String(job.id)]);
    const requeued = await untilState(job.id, (j) => j.JobState === 'PENDING' && j.Restarts === '1', 'the job requeued by ckpt-run', 60_000);
    if (whenRestored) {
      const pid = await pollFor(() => /program restored as PID (\d+)/.exec(readOr(job.output))?.[1], () => `the restore (${state(job.id)})`, 120_000, 50);
      whenRestored(Number(pid));
    }
    const done = await untilState(job.id, ended, 'the requeued job to start again and end', 120_000);
    return { requeued, done };
  };

  it('a. checkpoint on the batch signal, ckpt-run requeues the job, the requeued job resumes: every line once, the exit code', async () => {
    const job = submit('a', [], counter(40, 0.25, 42));
    let restoredCgroup: string | undefined;
    const { requeued, done } = await checkpointAndRequeue(job, 8, (pid) => {
      restoredCgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((line) => /^\d+:freezer:/.test(line));
    });
    const output = readOr(job.output);
    console.log(
      `slurm e2e a: job ${job.id}: requeued (${requeued.JobState}, Restarts=${requeued.Restarts}, Reason=${requeued.Reason}), then ${done.JobState} ExitCode=${done.ExitCode}\n` +
        output.split('\n').filter((line) => line.startsWith('ckpt-run:')).join('\n'),
    );
    expect(done).toMatchObject({ JobState: 'FAILED', ExitCode: '42:0', Restarts: '1' }); // Slurm calls any non-zero exit FAILED
    expect(counted(output)).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
    expect(output).not.toMatch(/Slurm truncated/);
    expect(output).toMatch(new RegExp(`job slurm-${job.id}-0, run slurm-${job.id}: starting a new run`));
    expect(output).toMatch(new RegExp(`requeueing the job: scontrol requeue ${job.id}`));
    expect(output).toMatch(new RegExp(`job slurm-${job.id}-1, run slurm-${job.id}: resuming the checkpoint`));
    expect(output).toMatch(/program restored as PID \d+/);
    expect(daemon.log()).toMatch(new RegExp(`job slurm-${job.id}-0: dump of PID \\d+ .* done`));
    expect(daemon.log()).toMatch(new RegExp(`job slurm-${job.id}-1: restore of .* done`));
    // proctrack/cgroup: the requeued job keeps its id, so its batch step has the dumped one's
    // cgroup path, and criu restores the tree there: Slurm tracks (and ends) the restored program.
    const proctrack = /ProctrackType\s*=\s*(\S+)/.exec(execFileSync('scontrol', ['show', 'config'], { encoding: 'utf8' }))?.[1];
    console.log(`slurm e2e a: ${proctrack}; the restored program's cgroup: ${restoredCgroup}`);
    if (IN_CI) expect(proctrack).toBe('proctrack/cgroup');
    if (proctrack === 'proctrack/cgroup') expect(restoredCgroup).toMatch(new RegExp(`^\\d+:freezer:/slurm_[^/]+/uid_${user.uid}/job_${job.id}/step_batch$`));
    else console.warn(`\n*** slurm e2e a: NOT CHECKED where the restored program runs: ${proctrack}, not proctrack/cgroup (no freezer cgroup hierarchy) ***\n`);
  }, 300_000);

  it('b. a job that may not be requeued: exit 12 after the checkpoint, which is kept for a new submission', async () => {
    const job = submit('b', ['--no-requeue'], counter(1000, 0.25, 0));
    await pollFor(() => (counted(readOr(job.output)).length >= 4 ? true : undefined), () => `4 lines in ${job.output} (${state(job.id)})`, 60_000, 200);
    asUser(user, ['scancel', '--batch', '--signal=USR2', String(job.id)]);
    const done = await untilState(job.id, ended, 'the job to end', 60_000);
    const output = readOr(job.output);
    console.log(`slurm e2e b: job ${job.id}: ${done.JobState} ExitCode=${done.ExitCode}; ${output.match(/scontrol requeue \d+ failed: .*/)?.[0]}`);
    expect(done).toMatchObject({ ExitCode: '12:0', Restarts: '0' });
    expect(output).toMatch(new RegExp(`scontrol requeue ${job.id} failed: .+\\. The checkpoint is kept: submit the job script again to resume it`));
    expect(readdirSync(join(job.dir, '.ckpt-run', `slurm-${job.id}`))).toEqual(expect.arrayContaining(['checkpoint', 'checkpoint_ok']));
  }, 120_000);

  it('c. submitted without --open-mode=append: the requeued job finds its output file truncated, says so, and the whole output is in the run folder', async () => {
    const job = submit('c', ['--open-mode=truncate'], counter(20, 0.25, 0));
    const { done } = await checkpointAndRequeue(job, 4);
    expect(done).toMatchObject({ JobState: 'COMPLETED', ExitCode: '0:0', Restarts: '1' });
    const output = readOr(job.output);
    expect(output).toMatch(/warn: Slurm truncated the job's output file when it requeued the job: .* Submit with --open-mode=append/);
    expect(counted(output)[0]).toBeGreaterThan(1); // the first job's lines are gone from it
    expect(counted(readOr(join(job.dir, '.ckpt-run', `slurm-${job.id}`, 'stdout.log')))).toEqual(Array.from({ length: 20 }, (_, k) => k + 1));
  }, 300_000);

  it("d. Slurm's own signal (--time=2 --signal=B:USR2@60): checkpoint before the time limit, requeue, resume; every line once, the exit code", async () => {
    const { job, done } = await chainD;
    const output = readOr(job.output);
    const signals = output.split('\n').filter((line) => line.includes('checkpoint signal received'));
    console.log(`slurm e2e d: job ${job.id}: ${done.JobState} ExitCode=${done.ExitCode} Restarts=${done.Restarts}; ${signals.length} checkpoint signal(s) from Slurm:\n${signals.join('\n')}`);
    expect(done).toMatchObject({ JobState: 'FAILED', ExitCode: `${D.code}:0` });
    expect(Number(done.Restarts)).toBeGreaterThanOrEqual(1); // no signal but Slurm's: the test sends none
    expect(signals.length).toBe(Number(done.Restarts));
    expect(counted(output)).toEqual(Array.from({ length: D.count }, (_, k) => k + 1));
  }, 480_000);
});
