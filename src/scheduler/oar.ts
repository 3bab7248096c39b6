/**
 * OAR 2.5 as measured on a real cluster:
 *  - the checkpoint signal goes to ONE process, the job's `bash -c "<command>"`: ckpt-run must
 *    be that process (a plain command is exec'd by bash; a script must `exec ckpt-run …`);
 *  - exit 99 resubmits only a job that ran more than 60 s;
 *  - a resubmitted job gets a new OAR_JOB_ID but keeps OAR_ARRAY_ID/OAR_ARRAY_INDEX;
 *  - the job's environment has OAR_JOB_WALLTIME_SECONDS, but not the --checkpoint delay.
 */
import { notExecWarning, walltimeEndsAt, type SchedulerContext } from './scheduler.js';

/** 60 s is OAR's rule; 2 s of margin for clock granularity between OAR's checks. */
export const OAR_MIN_RUNTIME_SEC = 62;

export function detectOar(env: NodeJS.ProcessEnv, ppid: number): SchedulerContext | undefined {
  const jobId = env.OAR_JOB_ID;
  if (!jobId) return undefined;
  const warning = notExecWarning('OAR', ppid);
  const arrayId = env.OAR_ARRAY_ID ?? jobId;
  const arrayIndex = env.OAR_ARRAY_INDEX ?? '1';
  return {
    name: 'OAR',
    jobId,
    runId: `oar-${arrayId}-${arrayIndex}`,
    minRuntimeSec: OAR_MIN_RUNTIME_SEC,
    walltimeEndsAt: walltimeEndsAt(Number(env.OAR_JOB_WALLTIME_SECONDS)),
    warnings: warning ? [warning] : [],
  };
}
