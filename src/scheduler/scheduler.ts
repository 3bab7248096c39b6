import { startedAtMs } from '../proc/process-liveness.js';

/** What ckpt-run needs to know from the batch scheduler it runs under. */
export interface SchedulerContext {
  name: string;
  /** This job's id: names the spool requests. Changes with every resubmission. */
  jobId?: string;
  /** A key that stays the same across resubmissions: names the run's folder. */
  runId?: string;
  /** The scheduler resubmits only jobs that ran at least this long (seconds). */
  minRuntimeSec: number;
  /** When the scheduler kills the job (epoch ms), where it says. */
  walltimeEndsAt?: number;
  /** Things about this job's setup that would stop checkpoints from working. */
  warnings: string[];
}

export const NO_SCHEDULER: SchedulerContext = { name: 'none', minRuntimeSec: 0, warnings: [] };

/**
 * When a walltime of WALLTIME_SEC ends (epoch ms). ckpt-run is the job's shell, exec'd: the job
 * started when this process did.
 */
export function walltimeEndsAt(walltimeSec: number): number | undefined {
  const jobStartedAt = startedAtMs(process.pid);
  return walltimeSec > 0 && jobStartedAt !== undefined ? jobStartedAt + walltimeSec * 1000 : undefined;
}
