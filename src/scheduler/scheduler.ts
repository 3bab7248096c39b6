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
