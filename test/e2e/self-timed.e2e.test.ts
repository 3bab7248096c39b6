/**
 * The self-timed final checkpoint (issue 24) on the real schedulers, with ckpt-daemon on real
 * CRIU, jobs submitted by a non-root user, and NO checkpoint signal from the scheduler:
 *   a. OAR 2.5.9: `oarsub -t idempotent -l walltime=0:1:40` without --checkpoint, a counter that
 *      needs ~150 s: ckpt-run checkpoints before the walltime by itself, exits 99 (after OAR's
 *      60-second rule), OAR resubmits, the new job resumes; every line once, the program's code;
 *   b. Slurm 22.05: `sbatch --time=2` without --signal: ckpt-run reads the job's EndTime,
 *      checkpoints before it, requeues the job, the requeued run resumes; every line once, the code.
 * a and b run side by side (two cores), one node daemon for both. About 4 minutes.
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
const numbers = (count: number): number[] => Array.from({ length: count }, (_, k) => k + 1);

const bothProbe: Probe = () => oarProbe() ?? slurmProbe();

describe.runIf(realPartAvailable('the self-timed final checkpoint under real OAR and Slurm', bothProbe))('the final checkpoint without the scheduler\'s signal', () => {
  let cluster: ClusterHandle | undefined;
  let slurmWasUp = true;
  let user: OarUser;
  let node: SchedulerNode | undefined;
  const slurmJobs: number[] = [];
  let chainA: Promise<{ jobs: OarJob[]; stdout: string[]; stderr: string[] }>;
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

    const dirA = jobDir('a');
    chainA = (async () => {
      const firstId = oarsub(user, dirA, ['-t', 'idempotent', '-l', `walltime=${A.walltime}`, '-n', 'e2e-self', `${join(pkg, 'examples/oar-job.sh')} ${counter} ${A.count} 1 ${A.code}`]);
      const jobs = await followChain(firstId, { timeoutMs: 480_000 });
      const stdout = jobs.map((job) => readOr(join(dirA, job.stdoutFile)));
      const stderr = jobs.map((job) => readOr(join(dirA, job.stderrFile)));
      console.log(`[a] OAR chain: ${formatChain(jobs)}\n${stderr.join('\n')}`);
      return { jobs, stdout, stderr };
    })();

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
    for (const chain of [chainA, chainB]) chain.catch(() => undefined); // each awaited by its test
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
    const last = jobs[jobs.length - 1];
    expect(jobs.length).toBeGreaterThanOrEqual(2);
    expect(jobs.map((job) => job.state)).toEqual(jobs.map(() => 'Terminated'));
    for (const job of jobs.slice(0, -1)) expect(exitStatusOf(job)).toEqual({ code: 99, signal: 0 });
    expect(exitStatusOf(last)).toEqual({ code: A.code, signal: 0 });
    // OAR sent no checkpoint signal: each checkpoint was ckpt-run's own, as planned at the start.
    expect(jobs.flatMap((job) => job.events.filter((event) => event.type === 'CHECKPOINT'))).toEqual([]);
    expect(stderr[0]).toMatch(/final checkpoint planned at \d\d:\d\d:\d\d \(in \d+ s\), \d+ s before the walltime: [\d.]+ MB at [\d.]+ MB\/s assumed/);
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
});
