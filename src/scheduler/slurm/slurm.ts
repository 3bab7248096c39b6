/**
 * Slurm 22.05 as measured on a local one-node cluster (scripts/slurm-local.sh):
 *  - `sbatch --signal=B:USR2@N` signals the batch shell alone ("B:"), as OAR does: the script
 *    must `exec ckpt-run …`; `scancel --batch --signal=USR2 ID` sends it by hand;
 *  - an exit code resubmits nothing (unless the site set RequeueExit): the job asks with
 *    `scontrol requeue ID`, which Slurm answers at once by ending the job (SIGTERM), then makes
 *    it pending again under the SAME id, SLURM_RESTART_COUNT one higher, eligible once the ended
 *    run's job credential expired (AuthInfo cred_expire, 120 s by default);
 *  - a requeued job's output file is truncated, unless submitted with --open-mode=append;
 *  - the job's environment has no end time (SLURM_JOB_END_TIME came with 23.02);
 *  - preemption (PreemptMode=REQUEUE, GraceTime G, SchedulerParameters=preempt_send_user_signal):
 *    `scontrol show job` shows PreemptTime at once and EndTime = PreemptTime + G; the steps get
 *    SIGTERM and SIGCONT, the batch shell NOTHING (not its --signal=B:USR2 either), until Slurm
 *    ends the job some 30 s after EndTime: SIGTERM and SIGCONT to the batch shell (not to its
 *    other descendants), SIGKILL to all of them KillWait later, and a requeue. A job learns of
 *    its preemption in time only by asking. At that SIGTERM `scontrol show job` shows the job
 *    COMPLETING, already requeued (Restarts one higher, no PreemptTime), and `scontrol requeue`
 *    fails ("Job is pending execution"): KillWait (30 s by default) is left for a checkpoint.
 */
import { fstatSync } from 'node:fs';
import { notExecWarning, querySchedulerCommand, type SchedulerAdapter, type SchedulerContext } from '../scheduler.js';
import type { StopFacts } from '../stop-reason.js';

/** The size of ckpt-run's stdout when it is a file, before ckpt-run writes to it; undefined otherwise. */
function stdoutFileBytes(): number | undefined {
  try {
    const stdout = fstatSync(1);
    return stdout.isFile() ? stdout.size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A requeued job starts with its output file truncated unless it was submitted with
 * --open-mode=append (Slurm opens it O_APPEND either way: the mode cannot be seen before). So an
 * output file that held less, when ckpt-run started, than what the run's earlier jobs relayed to
 * it was truncated. STARTBYTES must be taken before ckpt-run logs anything (stderr may be the same file).
 */
function truncatedOutputWarning(startBytes: number | undefined, relayedBytes: number): string | undefined {
  if (startBytes === undefined || startBytes >= relayedBytes) return undefined;
  return 'Slurm truncated the job\'s output file when it requeued the job: what the earlier jobs printed is gone from it (the program\'s whole output stays in the run folder, stdout.log and stderr.log). Submit with --open-mode=append (#SBATCH --open-mode=append).';
}

export function detectSlurm(env: NodeJS.ProcessEnv, ppid: number): SchedulerContext | undefined {
  const slurmJobId = env.SLURM_JOB_ID;
  if (!slurmJobId) return undefined;
  const restarts = env.SLURM_RESTART_COUNT ?? '0';
  // A requeued job keeps its id: the restart count tells its runs apart in the spool and the history.
  const jobId = `slurm-${slurmJobId}-${restarts}`;
  const runId = env.SLURM_ARRAY_JOB_ID ? `slurm-${env.SLURM_ARRAY_JOB_ID}-${env.SLURM_ARRAY_TASK_ID}` : `slurm-${slurmJobId}`;
  const startBytes = stdoutFileBytes();
  const warning = notExecWarning('Slurm (--signal=B:…)', ppid);
  return {
    name: 'Slurm',
    jobId,
    runId,
    minRuntimeSec: 0,
    warnings: warning ? [warning] : [],
    requeueCommand: ['scontrol', 'requeue', slurmJobId],
    resumedOutputWarning: (relayedBytes) => truncatedOutputWarning(startBytes, relayedBytes),
    stopFacts: async () => slurmStopFacts(await showJob(slurmJobId), Number(restarts)),
    walltimeEnd: async () => slurmEndTime(await showJob(slurmJobId)),
    preempted: async () => slurmStopFacts(await showJob(slurmJobId), Number(restarts)).said === 'preemption',
  };
}

const showJob = (id: string): Promise<string | undefined> => querySchedulerCommand(['scontrol', 'show', 'job', '-o', id]);

/**
 * When Slurm ends the job (epoch ms), from `scontrol show job -o ID` (TEXT): its EndTime, which
 * Slurm prints in the node's local time, without a zone (as JavaScript reads a date-time without
 * one); undefined without a time limit ("Unknown") or an answer.
 */
export function slurmEndTime(text: string | undefined): number | undefined {
  const endTime = /(?:^|\s)EndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\s|$)/.exec(text ?? '')?.[1];
  const ms = endTime === undefined ? NaN : new Date(endTime).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * What `scontrol show job -o ID` (TEXT) says of the stop of the job's run number RESTARTS
 * (SLURM_RESTART_COUNT): a PreemptTime means Slurm preempts it; so does a Restarts count above
 * the run's own, the job's state once Slurm ends a preempted job (COMPLETING, no PreemptTime
 * shown, already requeued: measured on 22.05 at the SIGTERM that ends it).
 */
export function slurmStopFacts(text: string | undefined, restarts: number): StopFacts {
  const preemptTime = /(?:^|\s)PreemptTime=(\S+)/.exec(text ?? '')?.[1];
  const requeuedAs = Number(/(?:^|\s)Restarts=(\d+)/.exec(text ?? '')?.[1]);
  if ((preemptTime !== undefined && preemptTime !== 'None') || requeuedAs > restarts) return { said: 'preemption', preemptible: true };
  return {};
}

/** No node side: the daemon leaves Slurm's cgroups as they are. */
export const SLURM: SchedulerAdapter = { name: 'Slurm', detect: detectSlurm };
