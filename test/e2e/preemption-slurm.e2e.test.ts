/**
 * Preemption on a REAL Slurm 22.05 cluster (scripts/slurm-local.sh: partition "lowprio" with
 * PreemptMode=REQUEUE and GraceTime=60, "highprio" preempts it, preempt_send_user_signal) with
 * ckpt-daemon on real CRIU: examples/slurm-preemptible-job.sh (`ckpt-run --preemption-poll 10`)
 * runs a counter on the whole node in lowprio; a highprio job that needs the node preempts it.
 * Slurm 22.05 signals the batch shell of a preempted job only once the grace time is over
 * (SIGTERM to every process of the job), so ckpt-run asks (scontrol show job: PreemptTime),
 * checkpoints within the grace time and requeues the job itself; the job runs again (same id,
 * Restarts=1, not more: Slurm's own preemption requeue does not add one) once the highprio job
 * is done, resumes, every line once, the program's own exit code; the run record says
 * "preemption". The same without --preemption-poll (examples/slurm-job.sh): Slurm's SIGTERM
 * that ends the preempted job (GraceTime + ~25 s after the preemption; Slurm has requeued the job
 * by then, `scontrol show job` shows Restarts one higher) makes the checkpoint, within KillWait.
 * About 4.5 minutes. Root only; in CI it always runs.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted, readOr } from '../helpers/launcher-harness.js';
import { ensureOarUser, type OarUser } from '../helpers/oar-cluster.js';
import { prepareSchedulerNode, type SchedulerNode } from '../helpers/oar-node.js';
import { pollFor } from '../helpers/poll.js';
import { realPartAvailable } from '../helpers/real-parts.js';
import { cancelUnfinished, sbatch, SLURM_FINAL_STATES, SLURM_LOCAL, slurmJob, slurmProbe, startSlurm, stopSlurm } from '../helpers/slurm-cluster.js';

const USER = 'ckptoar';
const COUNT = 60;
const CODE = 42;

/** A ckpt-run log line's time (ms). */
function loggedAt(log: string, what: RegExp): number | undefined {
  const stamp = log.split('\n').find((line) => what.test(line))?.match(/^ckpt-run: (\S+) /)?.[1];
  return stamp ? Date.parse(stamp) : undefined;
}

describe.runIf(realPartAvailable('ckpt-run preemption under a real Slurm', slurmProbe))('preemption under a real Slurm 22.05 (PreemptMode=REQUEUE, GraceTime) with ckpt-daemon on real CRIU', () => {
  let wasUp = true;
  let user: OarUser;
  let node: SchedulerNode | undefined;
  let pkg: string;
  let base: string;
  const jobs: number[] = [];

  beforeAll(async () => {
    wasUp = startSlurm();
    // A cluster started by an older slurm-local.sh lacks the preemptible partitions: start applies the configuration (restarting the daemons if it changed).
    if (wasUp) execFileSync('bash', [SLURM_LOCAL, 'start'], { stdio: 'inherit' });
    user = ensureOarUser(USER);
    node = await prepareSchedulerNode(user, 'slurm-preempt-e2e');
    ({ pkg, base } = node);
  }, 300_000);

  afterAll(async () => {
    cancelUnfinished(user, jobs);
    await node?.tearDown();
    if (!wasUp) stopSlurm();
  }, 120_000);

  /**
   * A lowprio job running SCRIPT (a counter under ckpt-run) preempted by a highprio job that
   * needs the node, followed until it ran again and ended.
   */
  async function preemptedRun(name: string, script: string, count = COUNT) {
    const dir = join(base, name);
    mkdirSync(dir);
    chownSync(dir, user.uid, user.gid);
    const id = sbatch(user, dir, ['--partition=lowprio', '--cpus-per-task=2', '--time=10', join(pkg, 'examples', script), join(pkg, 'examples/counter.sh'), String(count), '1', String(CODE)]);
    jobs.push(id);
    const output = join(dir, `ckpt-run.${id}.out`);
    const state = (jobId: number): string => `job ${jobId}: ${JSON.stringify(slurmJob(jobId))}`;
    await pollFor(() => (counted(readOr(output)).length >= 8 ? true : undefined), () => `8 lines in ${output} (${state(id)})`, 90_000, 250);
    const preemptor = sbatch(user, dir, ['--partition=highprio', '--cpus-per-task=2', '--time=2', '--output=preemptor.out', '--wrap', 'sleep 10']);
    jobs.push(preemptor);
    const preempted = await pollFor(() => {
      const job = slurmJob(id);
      return job && job.PreemptTime !== 'None' ? job : undefined;
    }, () => `Slurm to preempt job ${id} (${state(id)}; ${state(preemptor)})`, 30_000, 250);
    const requeued = await pollFor(() => {
      const job = slurmJob(id);
      return job && job.Restarts !== '0' ? job : undefined;
    }, () => `job ${id} requeued (${state(id)})`, 180_000, 250);
    const highDone = await pollFor(() => {
      const job = slurmJob(preemptor);
      return job && SLURM_FINAL_STATES.test(job.JobState) ? job : undefined;
    }, () => `the highprio job ${preemptor} to end (${state(preemptor)})`, 120_000, 500);
    const done = await pollFor(() => {
      const job = slurmJob(id);
      return job && SLURM_FINAL_STATES.test(job.JobState) ? job : undefined;
    }, () => `job ${id} to run again and end (${state(id)}); output:\n${readOr(output)}`, 240_000, 500);
    const log = readOr(output);
    console.log(
      `slurm preemption e2e (${script}): job ${id} PreemptTime=${preempted.PreemptTime} EndTime=${preempted.EndTime}; requeued (${requeued.JobState}, Restarts=${requeued.Restarts}); ` +
        `highprio ${preemptor} ${highDone.JobState} ${highDone.StartTime}..${highDone.EndTime}; then ${done.JobState} ExitCode=${done.ExitCode} Restarts=${done.Restarts} StartTime=${done.StartTime}\n` +
        log.split('\n').filter((line) => line.startsWith('ckpt-run:')).join('\n'),
    );
    const history = JSON.parse(readFileSync(join(dir, '.ckpt-run', `slurm-${id}`, 'state.json'), 'utf8')).history;
    return { id, preempted, highDone, done, log, history };
  }

  it('a lowprio job preempted by a highprio one (--preemption-poll): checkpoint within the grace time, one requeue, resumed once the highprio job is done; every line once, the exit code, reason preemption', async () => {
    const { id, preempted, highDone, done, log, history } = await preemptedRun('a', 'slurm-preemptible-job.sh');
    expect(done).toMatchObject({ JobState: 'FAILED', ExitCode: `${CODE}:0`, Restarts: '1' }); // one requeue: ckpt-run's
    expect(counted(log)).toEqual(Array.from({ length: COUNT }, (_, k) => k + 1));
    expect(log).toMatch(/the scheduler preempts this job \(--preemption-poll\): checkpointing now/);
    expect(log).toMatch(/this job stops for: preemption \(the scheduler says so\)/);
    expect(log).toMatch(new RegExp(`requeueing the job: scontrol requeue ${id}`));
    expect(log).toMatch(new RegExp(`job slurm-${id}-1, run slurm-${id}: resuming the checkpoint`));
    expect(log).toMatch(/program restored as PID \d+/);
    // The requeued job ran only once the highprio job was done with the node.
    expect(Date.parse(done.StartTime)).toBeGreaterThanOrEqual(Date.parse(highDone.EndTime));
    expect(history.map((job: { jobId: string; outcome?: string; reason?: string }) => [job.jobId, job.outcome, job.reason])).toEqual([
      [`slurm-${id}-0`, 'checkpointed', 'preemption'],
      [`slurm-${id}-1`, 'finished', undefined],
    ]);
    // Within the grace time: the checkpoint completed before Slurm's EndTime (PreemptTime + GraceTime).
    const dumped = loggedAt(log, /checkpoint complete in/) as number;
    const restored = loggedAt(log, /program restored as PID/) as number;
    const preemptAt = Date.parse(preempted.PreemptTime);
    expect(dumped).toBeLessThan(Date.parse(preempted.EndTime));
    console.log(
      `[numbers] Slurm PreemptTime -> checkpoint complete ${((dumped - preemptAt) / 1000).toFixed(1)} s (poll every 10 s; grace 60 s); -> resumed ${((restored - preemptAt) / 1000).toFixed(1)} s ` +
        `(highprio job ran ${highDone.StartTime}..${highDone.EndTime})`,
    );
  }, 420_000);

  it('without --preemption-poll: the SIGTERM that Slurm sends once the grace time is over checkpoints the program (KillWait before SIGKILL), Slurm requeues the job, it resumes; every line once, the exit code, reason preemption', async () => {
    // Slurm's SIGTERM comes GraceTime (60 s) + ~25 s after the preemption (84 s measured, at about
    // the counter's line 92): the program must still run then.
    const count = 120;
    const { id, done, log, history } = await preemptedRun('b', 'slurm-job.sh', count);
    expect(log).toMatch(/SIGTERM received from the scheduler, which ends this job for a preemption: checkpointing the program instead of stopping it/);
    expect(log).toMatch(/this job stops for: preemption \(the scheduler says so\)/);
    expect(done).toMatchObject({ JobState: 'FAILED', ExitCode: `${CODE}:0` });
    expect(counted(log)).toEqual(Array.from({ length: count }, (_, k) => k + 1));
    expect(log).toMatch(new RegExp(`job slurm-${id}-1, run slurm-${id}: resuming the checkpoint`));
    expect(history.map((job: { jobId: string; outcome?: string; reason?: string }) => [job.jobId, job.outcome, job.reason])).toEqual([
      [`slurm-${id}-0`, 'checkpointed', 'preemption'],
      [`slurm-${id}-1`, 'finished', undefined],
    ]);
  }, 480_000);
});
