import { readFileSync } from 'node:fs';
import { startedAtMs } from '../proc/processes.js';
import type { StopFacts } from './stop-reason.js';

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
  /** Asks the scheduler when it kills the job, where the job's environment does not say (Slurm before 23.02). */
  walltimeEnd?: () => Promise<number | undefined>;
  /** Things about this job's setup that would stop checkpoints from working. */
  warnings: string[];
  /**
   * The command that resubmits this job once a checkpoint completed (Slurm: scontrol requeue);
   * without one, exit 99 is the request (OAR).
   */
  requeueCommand?: string[];
  /**
   * For a job that resumes a run: what is wrong with its output file, given how many bytes of
   * the program's stdout the run's earlier jobs relayed to it (Slurm: truncated on requeue).
   */
  resumedOutputWarning?: (relayedBytes: number) => string | undefined;
  /** Asks the scheduler, when a signal comes, why the job is being stopped (stop-reason.ts). */
  stopFacts?: () => Promise<StopFacts>;
  /**
   * Asks about a past job of the run by its id (JOBID): OAR keeps a job's events. A job that
   * exited before the scheduler answered leaves its reason pending; the next job asks this.
   */
  stopFactsOf?: (jobId: string) => Promise<StopFacts>;
  /** What is known of any stop without asking (e.g. no scheduler: only a person signals). */
  knownFacts?: StopFacts;
  /** Whether the scheduler has chosen this job for preemption (Slurm: PreemptTime), for --preemption-poll. */
  preempted?: () => Promise<boolean>;
}

/**
 * What the node's daemon (root) asks a scheduler of a job on this node, where the scheduler puts
 * its jobs in cgroups of its own (OAR): whose job an id is, and where a restored tree belongs.
 */
export interface NodeSide {
  /**
   * The user the scheduler runs JOBID for on this node (undefined: not one of its jobs here);
   * DOUBT: why that user may not be the job's (the request is then refused).
   */
  jobOwner(jobId: string, cgroupRoot?: string): { user: string; doubt?: string } | undefined;
  /** The job's cgroup folders under every controller that has one: the restored tree goes there. */
  jobCgroups(user: string, jobId: string, cgroupRoot?: string): string[];
  /** The dumped job's cgroups that criu recreated, from the restored root's /proc/PID/cgroup (PROCCGROUP): removed. */
  dumpedJobCgroups(procCgroup: string, user: string, jobId: string, cgroupRoot?: string): string[];
}

/** One scheduler, as it registers itself (registry.ts): how a job finds it runs under it, and what its node's daemon asks of it. */
export interface SchedulerAdapter {
  name: string;
  /** What the job learns from it, when the job's environment (ENV) and parent (PPID) say it runs under it. */
  detect(env: NodeJS.ProcessEnv, ppid: number): SchedulerContext | undefined;
  /** For the node's daemon, where the scheduler has its own cgroups for its jobs. */
  node?: NodeSide;
}

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** How long a question to the scheduler (oarstat, scontrol) may take: the job cannot wait on it. */
export const SCHEDULER_QUERY_TIMEOUT_MS = 10_000;

/** COMMAND's stdout, or undefined when it fails or takes longer than SCHEDULER_QUERY_TIMEOUT_MS. */
export async function querySchedulerCommand(command: string[]): Promise<string | undefined> {
  const { execa } = await import('execa');
  const result = await execa(command[0], command.slice(1), { reject: false, stdin: 'ignore', timeout: SCHEDULER_QUERY_TIMEOUT_MS });
  return result.exitCode === 0 ? String(result.stdout) : undefined;
}

/** Without a scheduler, only a person sends the job signals. */
const BY_HAND: StopFacts = { said: 'manual', source: 'no scheduler: a person sent the signal' };
export const NO_SCHEDULER: SchedulerContext = { name: 'none', minRuntimeSec: 0, warnings: [], knownFacts: BY_HAND, stopFacts: async () => BY_HAND };

/**
 * When a walltime of WALLTIME_SEC ends (epoch ms). ckpt-run is the job's shell, exec'd: the job
 * started when this process did.
 */
export function walltimeEndsAt(walltimeSec: number): number | undefined {
  const jobStartedAt = startedAtMs(process.pid);
  return walltimeSec > 0 && jobStartedAt !== undefined ? jobStartedAt + walltimeSec * 1000 : undefined;
}

const SHELLS = new Set(['bash', 'sh', 'dash', 'zsh', 'ksh', 'csh', 'tcsh']);

function parentCommand(ppid: number): string | undefined {
  try {
    return readFileSync(`/proc/${ppid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * OAR and Slurm (--signal=B:) send the checkpoint signal to the job's shell alone: a ckpt-run
 * that is that shell's child never gets it, and the shell dies of it. Says so, if ckpt-run's
 * parent (PPID) is a shell.
 */
export function notExecWarning(scheduler: string, ppid: number): string | undefined {
  const parent = parentCommand(ppid);
  if (!parent || !SHELLS.has(parent)) return undefined;
  return (
    `ckpt-run's parent is a shell (${parent}, PID ${ppid}): ${scheduler} sends the checkpoint signal to ` +
    `that shell, which dies of it and the job is not resubmitted. Start ckpt-run with ` +
    `"exec ckpt-run -- …" in your job script.`
  );
}
