/**
 * Why a job is being stopped, decided when its checkpoint (or termination) signal comes: the one
 * classifier of ckpt-run (the log, the run record, `ckpt-run status`). Pure: the clues are read
 * at the edges (oar.ts, slurm.ts). The scheduler's own word wins; without it, the time left
 * before the walltime and whether the job can be preempted decide.
 */
import type { StopReason } from '../state/run-state.js';

export type { StopReason };

/** What the job knows when the signal comes. */
export interface StopClues {
  now: number;
  /** The signal: the checkpoint signal, or a termination signal (SIGTERM…). */
  signal: 'checkpoint' | 'terminate';
  /** When the scheduler kills the job (epoch ms), where it says. */
  walltimeEndsAt?: number;
  /** How long before the walltime the scheduler sends the checkpoint signal (OAR --checkpoint), where known. */
  leadMs?: number;
  /** The job can be preempted (OAR besteffort, a Slurm partition with PreemptMode other than OFF). */
  preemptible?: boolean;
  /**
   * The scheduler's own word: OAR's CHECKPOINT event (metasched: preemption, sarko: walltime,
   * a user: manual), Slurm's PreemptTime (set: preemption).
   */
  said?: Exclude<StopReason, 'crash'>;
}

/** OAR's walltime watcher signals at walltime - N or later, never before: this much late is still "at the walltime". */
export const WALLTIME_SLACK_MS = 60_000;

export function stopReason(clues: StopClues): Exclude<StopReason, 'crash'> {
  if (clues.said) return clues.said;
  const left = clues.walltimeEndsAt === undefined ? undefined : clues.walltimeEndsAt - clues.now;
  // A termination signal at the walltime is the scheduler's kill; a checkpoint signal within the lead is its warning.
  const window = clues.signal === 'terminate' ? WALLTIME_SLACK_MS : (clues.leadMs ?? 0) + WALLTIME_SLACK_MS;
  if (left !== undefined && left <= window && (clues.signal === 'terminate' || clues.leadMs !== undefined)) return 'walltime';
  if (clues.preemptible) return 'preemption';
  // Without the lead, a checkpoint signal is the walltime's unless the scheduler said otherwise.
  if (clues.signal === 'checkpoint' && clues.leadMs === undefined) return 'walltime';
  return 'manual';
}

/**
 * What the scheduler tells a job about its stop, asked at the signal (bounded); any of it may be
 * missing. SOURCE: who said SAID, for the log (default: the scheduler).
 */
export type StopFacts = Pick<StopClues, 'said' | 'preemptible'> & { source?: string };

/** Whether the scheduler answered at all (a failed or timed-out query gives nothing). */
export const answered = (facts: StopFacts): boolean => facts.said !== undefined || facts.preemptible !== undefined;
