/** What the supervisor (supervisor.ts) is told to run, and how: the command line's choices and the scheduler's facts. */
import type { Logger } from '../log/logger.js';
import type { OwnFile } from '../proc/job-output.js';
import type { StopFacts } from '../scheduler/stop-reason.js';
import type { ChosenEngine } from '../engine/registry.js';

export interface LaunchSettings {
  argv: string[];
  workdir: string;
  spoolDir: string;
  jobId: string;
  signal: NodeJS.Signals;
  resumeTimeoutMs: number;
  dumpTimeoutMs: number;
  minRuntimeMs: number;
  maxRestarts: number;
  /** When the scheduler kills the job (epoch ms), where it says. */
  walltimeEndsAt?: number;
  /** Asks the scheduler when it kills the job, where it must be asked after the start (Slurm). */
  walltimeEnd?: () => Promise<number | undefined>;
  /** Plan the final checkpoint from the walltime, the memory and the dumps' throughput (final-plan.ts); off: --no-self-timed. */
  selfTimed: boolean;
  /** --dump-safety: the dump may take this many times its estimate. */
  dumpSafety: number;
  /** --interval: periodic checkpoints that leave the program running, this often. */
  intervalMs?: number;
  /** --keep: how many complete checkpoints the run folder keeps (the current one included). */
  keep: number;
  pidNamespace: boolean;
  /** Fail fast when no daemon heartbeat answers a request (off for daemons without one). */
  daemonCheck: boolean;
  /** How long a request may wait unanswered, without a live heartbeat, before we say so. */
  daemonGraceMs: number;
  /** The safety poll's period while a request is out: catches what inotify missed (e.g. NFS). */
  pollMs: number;
  /** The same while the program just runs: its exit, output and status all have push events. */
  idlePollMs: number;
  /** Asks the scheduler why the job is being stopped, at the first checkpoint or termination signal. */
  stopFacts?: () => Promise<StopFacts>;
  /**
   * Asks the scheduler about a past job of the run, by its id there (OAR): the next job completes
   * a record whose reason was still pending when that job exited. Absent where it cannot say (Slurm).
   */
  pastStopFacts?: (schedulerJobId: string) => Promise<StopFacts>;
  /** This job's id as its scheduler knows it, where pastStopFacts can be asked about it later. */
  schedulerJobId?: string;
  /** The job's own output files (proc/job-output.ts), kept in its history entry: a later resume leaves them out of what changed. */
  jobOutput?: OwnFile[];
  /** What is known of any stop without asking the scheduler (scheduler.ts: knownFacts). */
  knownFacts?: StopFacts;
  /** Asks the scheduler whether it preempts the job (Slurm: PreemptTime): at a termination signal, and for --preemption-poll. */
  preempted?: () => Promise<boolean>;
  /** --preemption-poll: ask this often, and checkpoint when the scheduler preempts the job. */
  preemptionPollMs?: number;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** The command that resubmits the job after a checkpoint, where exit 99 does not (Slurm: scheduler.ts). */
  requeueCommand?: string[];
  /** --keep-images: a finished run's images stay. */
  keepImages: boolean;
  /** --engine: what makes the checkpoints, its settings (its own options) bound in (engine/registry.ts). */
  engine: ChosenEngine;
}
