/**
 * The dry run's verdict and exit code, from its cycles and what the daemon reported. A dry run
 * in which any dump or restore failed is a failed one, whatever the program did afterwards: a
 * program that finished because no checkpoint ever stopped it would, on the cluster, have been
 * killed at its walltime with nothing to resume.
 */
import { ExitCode } from '../base/exit-codes.js';
import { plural } from '../base/words.js';
import { looksLikeRestoreFailure } from '../state/run-images.js';
import type { SignalSchedule } from './schedule.js';
import type { CycleRecord, SimulationSummary } from './summary.js';

export const KILLED_AT_WALLTIME = 'killed at its walltime (not resubmitted)';
export const CRASHED = 'crashed: the whole job killed (SIGKILL)';
export const PREEMPTED_KILLED = 'preempted: killed after the grace time';

/** A dump or restore the daemon could not make. */
export interface DaemonFailure {
  kind: 'dump' | 'restore';
  jobId: string;
  reason: string;
}

export interface VerdictInput {
  engine: string;
  command: string[];
  schedule: SignalSchedule;
  maxCycles: number;
  cycles: CycleRecord[];
  failures: DaemonFailure[];
}

function said(failures: DaemonFailure[]): string {
  return failures.map((failure) => `${failure.kind} of job ${failure.jobId} failed: ${failure.reason}`).join('; ');
}

/** What the last cycle did, for a verdict that leads with something else. */
function lastCycle(cycles: CycleRecord[], checkpoints: number): string {
  const last = cycles[cycles.length - 1];
  if (last.finished) return `the program then finished with exit code ${last.exitCode} after ${plural(checkpoints, 'checkpoint')}`;
  return `cycle ${cycles.length} ended with: ${last.endedBy}, after ${plural(checkpoints, 'checkpoint')}`;
}

function failedVerdict(failures: DaemonFailure[], cycles: CycleRecord[], checkpoints: number): string {
  const dumps = failures.filter((failure) => failure.kind === 'dump');
  const restores = failures.filter((failure) => failure.kind === 'restore');
  const what = [dumps.length ? plural(dumps.length, 'checkpoint') : '', restores.length ? plural(restores.length, 'restore') : '']
    .filter(Boolean)
    .join(' and ');
  const todo = restores.length
    ? 'a checkpoint that does not restore here will not restore on the cluster either: fix what CRIU names, then run the dry run again'
    : "on the cluster such a job runs into its walltime with nothing to resume: fix what CRIU names (-v shows the daemon's steps), " +
      'or use --engine restart if the program saves its own progress';
  return `${what} failed (${said(failures)}); ${lastCycle(cycles, checkpoints)}. A dry run with a failed checkpoint or restore fails: ${todo}.`;
}

/** The program was gone: criu's words when it ended during the dump, the daemon's when before. */
const PROGRAM_GONE = /No such process|^no process \d+ on this node/;

/**
 * A dump that found the program gone in the job where it finished on its own: the signal came
 * as the program was ending, as it may on the cluster; nothing is lost.
 */
function endedDuringDump(failure: DaemonFailure, cycles: CycleRecord[]): boolean {
  return failure.kind === 'dump' && PROGRAM_GONE.test(failure.reason) && cycles.some((cycle) => cycle.jobId === failure.jobId && cycle.finished);
}

export function verdict({ engine, command, schedule, maxCycles, cycles, failures: reported }: VerdictInput): SimulationSummary {
  const failures = reported.filter((failure) => !endedDuringDump(failure, cycles));
  const last = cycles[cycles.length - 1];
  // Periodic checkpoints count too: a job's dumps as the daemon told them, at least its exit 99
  // (a program that saved itself, --engine app, has no daemon to tell).
  const checkpoints = cycles.reduce((sum, cycle) => sum + Math.max(cycle.dumps ?? 0, cycle.exitCode === ExitCode.Resubmit ? 1 : 0), 0);
  const base = { engine, command, cycles, checkpoints };
  const reasons = failures.length ? ` The daemon said: ${said(failures)}` : '';
  // First, since a dump cut off by the kill is its consequence, not its cause.
  if (last.endedBy === KILLED_AT_WALLTIME && schedule.kind === 'walltime') {
    const { walltimeSec, checkpointSec } = schedule;
    return {
      ...base,
      ok: false,
      exitCode: last.exitCode,
      verdict:
        `cycle ${cycles.length} was still running at its walltime (${walltimeSec} s): OAR kills such a job and does not resubmit it, so the run would stop here. ` +
        (checkpointSec === undefined
          ? "No checkpoint signal came (none was played) and the job's self-timed final checkpoint did not end in time: raise --dump-safety (here and in the job)."
          : `The checkpoint signal came ${checkpointSec} s before the walltime, too late for the job to exit 99 in time: raise --checkpoint (here and in oarsub) ` +
            `to the dump time plus ~15 s, since OAR's signal comes up to 10-15 s late.`) +
        reasons,
    };
  }
  if (failures.length) return { ...base, ok: false, exitCode: ExitCode.DryRunFailed, verdict: failedVerdict(failures, cycles, checkpoints) };
  const inconsistent = cycles.find((cycle) => cycle.notRolledBack !== undefined);
  if (inconsistent) {
    return {
      ...base,
      ok: false,
      exitCode: ExitCode.DryRunFailed,
      verdict:
        `job ${inconsistent.jobId} resumed with files changed after its checkpoint that the program did not hold open then, so not put back: ${inconsistent.notRolledBack}; ` +
        `${lastCycle(cycles, checkpoints)}. The resumed program finds them unlike what it left: have it hold such files open (their content is then kept with each checkpoint), or write them only when it ends.`,
    };
  }
  if (last.finished && last.restoreMs !== undefined && looksLikeRestoreFailure(last.exitCode, last.runSec * 1000)) {
    return {
      ...base,
      ok: false,
      exitCode: ExitCode.DryRunFailed,
      verdict:
        `the program ended with exit code ${last.exitCode} ${last.runSec.toFixed(1)} s after job ${last.jobId} resumed it, after ${plural(checkpoints, 'checkpoint')}: ` +
        'that may be the restore\'s doing (a file not as the program left it?). Its output says; the checkpoint images are kept (ckpt-run clean removes them).',
    };
  }
  if (last.exitCode === ExitCode.Resubmit && !last.finished) {
    return {
      ...base,
      ok: true,
      exitCode: 0,
      verdict: `stopped after ${plural(maxCycles, 'cycle')} (--max-cycles): ${plural(checkpoints, 'checkpoint')} made; the program has not finished (its last checkpoint is kept in .ckpt-run/simulate).`,
    };
  }
  if (last.finished) {
    return { ...base, ok: true, exitCode: last.exitCode, verdict: `the program finished with exit code ${last.exitCode} after ${plural(checkpoints, 'checkpoint')}.` };
  }
  return { ...base, ok: false, exitCode: last.exitCode, verdict: `${lastCycle(cycles, checkpoints)}.` };
}
