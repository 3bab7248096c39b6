/**
 * The self-timed final checkpoint (issue 24) on the real schedulers, with ckpt-daemon on real
 * CRIU, jobs submitted by a non-root user, and NO checkpoint signal from the scheduler:
 *   a. OAR 2.5.9: `oarsub -t idempotent -l walltime=0:1:40` without --checkpoint, a counter that
 *      needs ~150 s: ckpt-run checkpoints before the walltime by itself, exits 99 (after OAR's
 *      60-second rule), OAR resubmits, the new job resumes; every line once, the program's code;
 *   b. Slurm 22.05: `sbatch --time=2` without --signal: ckpt-run reads the job's EndTime,
 *      checkpoints before it, requeues the job, the requeued run resumes; every line once, the code;
 *   c. OAR with `--checkpoint 5` for a program of 3.5 GB, whose dump takes 10-20 s here (more
 *      than the signal's lead): ckpt-run checkpoints before the signal by its own plan, says why,
 *      exits 99, OAR resubmits, the new job resumes; every line once, the program's code.
 * a, b and c run side by side (OAR has a resource per core), one node daemon for all: its canary's
 * dump rate (heartbeat) is what the first jobs plan with. About 3.5 minutes (c: 96 + 47 s of jobs).
 * Root only; in CI it always runs (OAR, Slurm and CRIU are installed if missing).
 */
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted, readOr } from '../helpers/launcher-harness.js';
import { deleteActiveJobs, ensureOarUser, exitStatusOf, followChain, formatChain, oarProbe, oarsub, startCluster, stopCluster, type ClusterHandle, type OarJob, type OarUser } from '../helpers/oar-cluster.js';
import { prepareSchedulerNode, type SchedulerNode } from '../helpers/oar-node.js';
import { pollFor } from '../helpers/poll.js';
import { realPartAvailable, type Probe } from '../helpers/real-parts.js';
import { cancelUnfinished, sbatch, SLURM_FINAL_STATES, slurmJob, slurmProbe, startSlurm, stopSlurm } from '../helpers/slurm-cluster.js';

const USER = 'ckptoar';
/** a: 150 s of work, 100 s of walltime per job: two jobs (three if OAR is slow to resubmit). */
const A = { walltime: '0:1:40', count: 150, code: 45 };
/** b: 150 s of work, 120 s per run: two runs. */
const B = { count: 150, code: 46 };
/**
 * c: 3.5 GB filled at the start (145-290 MB/s of page faults on this VM, loaded or not), then a
 * line a second, 80 in all; 120 s per job. Its dump takes more than --checkpoint's 5 s whatever
 * the load: past the kernel's dirty-page budget (20% of 23 GB) a dump goes at the disk's pace
 * (3.5 GB by bare criu: 8.3 s; through the daemon in this suite: frozen 17.5 s; 5 GB, 26.7 s). Its plan, at the
 * daemon's canary rate taken at 200 MB/s at most, checkpoints ~49 s before the walltime (at
 * ~71 s: after OAR's 60-second rule, long before its signal at 115 s), after at most 71 lines;
 * the resumed job prints the rest before its own plan.
 */
const C = { walltime: '0:2:0', checkpoint: 5, bytes: 3.5e9, count: 80, code: 47 };
const numbers = (count: number): number[] => Array.from({ length: count }, (_, k) => k + 1);

/**
 * An OAR chain that checkpointed by itself: resubmitted at least once, every job Terminated, each
 * but the last with exit 99, the last with the program's CODE; OAR sent no checkpoint signal
 * (each checkpoint was ckpt-run's own, as planned).
 */
function expectSelfTimedChain(jobs: OarJob[], code: number): void {
  expect(jobs.length).toBeGreaterThanOrEqual(2);
  expect(jobs.map((job) => job.state)).toEqual(jobs.map(() => 'Terminated'));
  for (const job of jobs.slice(0, -1)) expect(exitStatusOf(job)).toEqual({ code: 99, signal: 0 });
  expect(exitStatusOf(jobs[jobs.length - 1])).toEqual({ code, signal: 0 });
  expect(jobs.flatMap((job) => job.events.filter((event) => event.type === 'CHECKPOINT'))).toEqual([]);
}

const bothProbe: Probe = () => oarProbe() ?? slurmProbe();

describe.runIf(realPartAvailable('the self-timed final checkpoint under real OAR and Slurm', bothProbe))('the final checkpoint without the scheduler\'s signal', () => {
  let cluster: ClusterHandle | undefined;
  let slurmWasUp = true;
  let user: OarUser;
  let node: SchedulerNode | undefined;
  const slurmJobs: number[] = [];
  let chainA: Promise<{ jobs: OarJob[]; stdout: string[]; stderr: string[] }>;
  let chainC: Promise<{ jobs: OarJob[]; stdout: string[]; stderr: string[] }>;
  let chainB: Promise<{ id: number; done: Record<string, string>; output: string }>;

  const jobDir = (name: string): string => {
    const dir = join((node as SchedulerNode).base, name);
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, user.uid, user.gid);
    return dir;
  };

  beforeAll(async () => {
    cluster = startCluster();
    slurmWasUp = startSlurm();
    user = ensureOarUser(USER);
    node = await prepareSchedulerNode(user, 'self-timed-e2e');
    const { pkg } = node;
    const counter = join(pkg, 'examples/counter.sh');

    /** An OAR chain from `oarsub ARGS` in a folder of its own, followed to its end, with each job's output. */
    const oarChain = async (name: string, args: string[]): Promise<{ jobs: OarJob[]; stdout: string[]; stderr: string[] }> => {
      const dir = jobDir(name);
      const jobs = await followChain(oarsub(user, dir, args), { timeoutMs: 480_000 });
      const stdout = jobs.map((job) => readOr(join(dir, job.stdoutFile)));
      const stderr = jobs.map((job) => readOr(join(dir, job.stderrFile)));
      console.log(`[${name}] OAR chain: ${formatChain(jobs)}\n${stderr.join('\n')}`);
      return { jobs, stdout, stderr };
    };

    chainA = oarChain('a', ['-t', 'idempotent', '-l', `walltime=${A.walltime}`, '-n', 'e2e-self', `${join(pkg, 'examples/oar-job.sh')} ${counter} ${A.count} 1 ${A.code}`]);

    const big = join(node.base, 'big.mjs');
    writeFileSync(
      big,
      `const held = Array.from({ length: ${C.bytes / 0.5e9} }, () => Buffer.alloc(0.5e9, 1));\n` +
        `let i = 0;\nconst tick = setInterval(() => { console.log(++i); if (i === ${C.count}) { clearInterval(tick); process.exitCode = held[0][0] + ${C.code - 1}; } }, 1000);\n`,
      { mode: 0o644 },
    );
    chainC = oarChain('c', ['-t', 'idempotent', '--checkpoint', String(C.checkpoint), '-l', `walltime=${C.walltime}`, '-n', 'e2e-self-big', `${join(pkg, 'examples/oar-job.sh')} ${process.execPath} ${big}`]);

    const dirB = jobDir('b');
    // examples/slurm-job.sh asks for a signal (#SBATCH --signal): this script asks for none.
    const script = join(dirB, 'job.sh');
    writeFileSync(script, `#!/bin/sh\n#SBATCH --requeue\n#SBATCH --open-mode=append\n#SBATCH --output=ckpt-run.%j.out\nexec ckpt-run -- ${counter} ${B.count} 1 ${B.code}\n`, { mode: 0o755 });
    chownSync(script, user.uid, user.gid);
    chainB = (async () => {
      const id = sbatch(user, dirB, ['--time=2', script]);
      slurmJobs.push(id);
      const output = join(dirB, `ckpt-run.${id}.out`);
      const done = await pollFor(
        () => {
          const job = slurmJob(id);
          return job && SLURM_FINAL_STATES.test(job.JobState) ? job : undefined;
        },
        () => `Slurm job ${id} to end: ${JSON.stringify(slurmJob(id))}\n${readOr(output)}`,
        480_000,
        500,
      );
      console.log(`[b] Slurm job ${id}: ${done.JobState} ExitCode=${done.ExitCode} Restarts=${done.Restarts}\n${readOr(output).split('\n').filter((line) => line.startsWith('ckpt-run:')).join('\n')}`);
      return { id, done, output: readOr(output) };
    })();
    for (const chain of [chainA, chainB, chainC]) chain.catch(() => undefined); // each awaited by its test
  }, 300_000);

  afterAll(async () => {
    if (user) await deleteActiveJobs(user).catch((error) => console.warn(`self-timed e2e: ${error}`));
    if (user) cancelUnfinished(user, slurmJobs);
    await node?.tearDown();
    if (cluster && !cluster.wasUp) stopCluster();
    if (!slurmWasUp) stopSlurm();
  }, 240_000);

  it('a. OAR without --checkpoint: ckpt-run checkpoints before the walltime, exit 99, OAR resubmits, the new job resumes; every line once, the exit code', async () => {
    const { jobs, stdout, stderr } = await chainA;
    expectSelfTimedChain(jobs, A.code);
    // Before a dump of its own, the job plans with the rate the node's daemon measured at its start.
    expect(stderr[0]).toMatch(/final checkpoint planned at \d\d:\d\d:\d\d \(in \d+ s\), \d+ s before the walltime: [\d.]+ MB at [\d.]+ MB\/s measured by this node's daemon/);
    expect(stderr[0]).toMatch(/no checkpoint signal from the scheduler \d+ s before the walltime: checkpointing now, as planned/);
    expect(stderr[0]).toMatch(/this job stops for: walltime/);
    expect(stderr[0]).not.toMatch(/checkpoint signal received/);
    expect(stdout.flatMap((text) => counted(text))).toEqual(numbers(A.count));
  }, 500_000);

  it('b. Slurm --time=2 without --signal: ckpt-run checkpoints before the EndTime, requeues the job, the requeued run resumes; every line once, the exit code', async () => {
    const { done, output } = await chainB;
    expect(done).toMatchObject({ JobState: 'FAILED', ExitCode: `${B.code}:0` });
    expect(Number(done.Restarts)).toBeGreaterThanOrEqual(1);
    expect(output).toMatch(/final checkpoint planned at \d\d:\d\d:\d\d \(in \d+ s\), \d+ s before the walltime/);
    expect(output).toMatch(/no checkpoint signal from the scheduler \d+ s before the walltime: checkpointing now, as planned/);
    expect(output).not.toMatch(/checkpoint signal received/);
    expect(output).not.toMatch(/TIME LIMIT/);
    expect(counted(output)).toEqual(numbers(B.count));
  }, 500_000);

  it('c. OAR --checkpoint 5 for a program whose dump takes longer: ckpt-run checkpoints before the signal by its own plan and says why; exit 99, OAR resubmits, the new job resumes; every line once, the exit code', async () => {
    const { jobs, stdout, stderr } = await chainC;
    expectSelfTimedChain(jobs, C.code);
    // The plan followed the program as it filled its memory, at the rate of the node's daemon.
    expect(stderr[0]).toMatch(/new plan: final checkpoint planned at \d\d:\d\d:\d\d \(in \d+ s\), \d+ s before the walltime: [\d.]+ MB at [\d.]+ MB\/s measured by this node's daemon/);
    // Why it checkpointed early: OAR's signal (5 s before the walltime) would have left less than the dump's estimate.
    const reason = /no checkpoint signal from the scheduler (\d+) s before the walltime: checkpointing now, as planned \(the dump of ([\d.]+) MB is estimated at (\d+) s\)/.exec(stderr[0]);
    expect(reason, stderr[0]).not.toBeNull();
    const [leadS, megabytes, estimateS] = (reason as RegExpExecArray).slice(1).map(Number);
    // The memory it had filled (sampled every 5 s; the fill is over long before the plan's time).
    expect(megabytes).toBeGreaterThan(C.bytes / 1e6);
    expect(estimateS).toBeGreaterThan(C.checkpoint);
    expect(leadS).toBeGreaterThan(estimateS);
    // The premise: this dump takes longer than --checkpoint's lead here.
    const frozen = /checkpoint complete in [\d.]+ m?s \(program frozen ([\d.]+) (m?s), [\d.]+ MB[,)]/.exec(stderr[0]);
    expect(frozen, stderr[0]).not.toBeNull();
    const [frozenFigure, unit] = [(frozen as RegExpExecArray)[1], (frozen as RegExpExecArray)[2]];
    expect(Number(frozenFigure) * (unit === 's' ? 1000 : 1)).toBeGreaterThan(C.checkpoint * 1000);
    expect(stderr[0]).not.toMatch(/checkpoint signal received/);
    // The resumed job plans with the throughput the first job's dump showed.
    expect(stderr[1]).toMatch(/final checkpoint planned at .* MB\/s measured, dump estimated/);
    expect(stdout.flatMap((text) => counted(text))).toEqual(numbers(C.count));
  }, 500_000);
});
