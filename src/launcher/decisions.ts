/**
 * The supervisor's judgements about the world, pure like the machine: the effect modules read
 * the files, the heartbeat and /proc, and these functions decide what that means. Each one is
 * tested with a fake clock in test/unit/supervisor-decisions.test.ts.
 */
import type { RunFiles } from '../engine/link.js';
import { stopReason, type StopFacts } from '../scheduler/stop-reason.js';
import type { JobRecord, PendingStop, RunState } from '../state/run-state.js';
import type { MachineEvent, MachineState, Outcome } from './machine-state.js';

/**
 * Which file event wins: the program's own exit status above all (a finished run is never
 * resubmitted); while resuming, the daemon's failure before its pidfile; otherwise a dump's
 * failure, then its success, then the program's disappearance, in the order the machine needs
 * them (a checkpoint_ok seen with the program gone exits 99 at once).
 */
export function eventsFromFiles(state: MachineState, files: RunFiles): MachineEvent[] {
  if (state.phase === 'holding' || state.phase === 'ended') return [];
  if (files.exitStatus !== undefined) return [{ type: 'programExited', exitCode: files.exitStatus }];
  if (state.phase === 'resuming') {
    if (files.restoreFailed) return [{ type: 'restoreFailed', reason: files.restoreFailed.reason, retryable: files.restoreFailed.retryable }];
    return files.restoredPid === undefined ? [] : [{ type: 'restored', pid: files.restoredPid }];
  }
  const events: MachineEvent[] = [];
  if ((state.phase === 'running' || state.phase === 'checkpointing') && state.request) {
    if (files.dumpFailed) events.push({ type: 'dumpFailed', reason: files.dumpFailed.reason, program: files.dumpFailed.program });
    if (files.checkpointOk !== undefined && files.checkpointOk !== files.checkpointOkAtRequest) {
      const stats = files.checkpointStats;
      events.push({ type: 'checkpointOk', figures: stats && { frozenMs: stats.frozenMs, bytes: stats.bytes, localState: stats.localState, kept: stats.kept } });
    }
  }
  // A resumed program gone with no status but restore_failed: a lazy restore whose memory never
  // all came in (the daemon told, then killed the program); the checkpoint is intact.
  const lazyFailure = files.resumedJob && state.phase === 'running' && !state.request ? files.restoreFailed : undefined;
  if (files.programAlive === false && lazyFailure) events.push({ type: 'restoreFailed', reason: lazyFailure.reason, retryable: lazyFailure.retryable });
  else if (files.programAlive === false) events.push({ type: 'programGone' });
  return events;
}

/** The exit status as the shim publishes it (digits and a newline), or undefined while incomplete. */
export function parseExitStatus(text: string | undefined): number | undefined {
  return text !== undefined && /^\d+\n$/.test(text) ? Number(text) : undefined;
}

/** The pidfile may exist before it is complete (criu writes it as root): digits, a newline or not. */
export function parsePidfile(text: string | undefined): number | undefined {
  return text !== undefined && /^\d+\n?$/.test(text) ? Number(text) : undefined;
}

/** What /proc says of the shim at the root of the tree when a signal is to be passed on. */
export interface ShimView {
  /** The shim's children, each with its command line (undefined if unreadable). */
  children: Array<{ pid: number; commandLine?: string }>;
  shimCommandLine?: string;
  programAlive: boolean;
  now: number;
  deadline: number;
}

/**
 * Whom a forwarded signal goes to: the program, the shim's child. Right after the start the
 * shim may not have started it yet, or only forked it: that child still runs the shim's
 * command line and handler (which would swallow the signal) until it execs the program. Then
 * try again, bounded by DEADLINE, rather than pass the signal to nobody.
 */
export function signalTargets(view: ShimView): { retry: true } | { retry: false; pids: number[] } {
  const notYet = view.children.length === 0 || view.children.some((child) => child.commandLine === view.shimCommandLine);
  if (notYet && view.programAlive && view.now < view.deadline) return { retry: true };
  return { retry: false, pids: view.children.map((child) => child.pid) };
}

/** How the job ended, as the run record needs it. */
export interface JobEnd {
  code: number;
  outcome: Outcome;
  /** The program's own exit code, when it finished. */
  exitCode?: number;
  /** The bytes relayed of each output file. */
  relayed: RunState['relayed'];
  /** checkpoint_ok's identity at the job's start and now. */
  checkpointAtStart?: string;
  checkpointNow?: string;
  /** A termination signal was passed to the program. */
  terminating: boolean;
  endedAt: Date;
  /** Why the job was stopped, where it was (stopRecord). */
  stop?: StopRecord;
}

/** What the job saw of its stop at its first signal: the clock's part of the reason. */
export interface StopSeen {
  signal: 'checkpoint' | 'terminate';
  /** When the signal came (epoch ms). */
  at: number;
  walltimeEndsAt?: number;
  /** Where the scheduler can be asked later about this job (OAR): its id there. */
  schedulerJobId?: string;
}

export type StopRecord = Required<Pick<JobRecord, 'reason'>> & Pick<JobRecord, 'reasonPending'>;

/**
 * What the run record says of a stop: the reason from the scheduler's ANSWER and the clock at
 * the signal; without an answer yet (the job exits now: its exit code waits on nothing but the
 * checkpoint), the clock's guess from what is KNOWN without asking, marked pending so that the
 * next job completes it (completeStop).
 */
export function stopRecord(seen: StopSeen, answer: StopFacts | undefined, known: StopFacts = {}): StopRecord {
  const clues = { now: seen.at, signal: seen.signal, walltimeEndsAt: seen.walltimeEndsAt };
  if (answer) return { reason: stopReason({ ...clues, ...answer }) };
  const reasonPending: PendingStop = { signal: seen.signal, at: new Date(seen.at).toISOString() };
  if (seen.walltimeEndsAt !== undefined) reasonPending.walltimeEndsAt = new Date(seen.walltimeEndsAt).toISOString();
  if (seen.schedulerJobId !== undefined) reasonPending.schedulerJobId = seen.schedulerJobId;
  return { reason: stopReason({ ...clues, ...known }), reasonPending };
}

/**
 * A past job's record whose reason was pending, completed with what the scheduler now says of
 * that job (asked by a later job): decided as it would have been at its signal.
 */
export function completeStop(record: JobRecord, facts: StopFacts): JobRecord {
  const pending = record.reasonPending;
  if (!pending) return record;
  const walltimeEndsAt = pending.walltimeEndsAt === undefined ? undefined : Date.parse(pending.walltimeEndsAt);
  const { reasonPending: _done, ...rest } = record;
  return { ...rest, reason: stopReason({ now: Date.parse(pending.at), signal: pending.signal, walltimeEndsAt, ...facts }) };
}

/**
 * The run record at the end of a job (it decides what the next job does), and what to remove
 * from the run directory with it.
 */
export function endOfJobRecord(before: RunState, end: JobEnd): { state: RunState; removeCheckpointOk: boolean; removeExitStatus: boolean } {
  const state: RunState = { ...before, relayed: { ...end.relayed }, history: before.history.map((record) => ({ ...record })) };
  if (end.outcome === 'checkpointed') state.restarts += 1;
  if (end.exitCode !== undefined) state.exitCode = end.exitCode;
  // A dump completed during this job and ended the program: the output files end where the
  // checkpoint's program left them (a job that resumes it after a kill rolls back to there).
  if (end.checkpointNow !== undefined && end.checkpointNow !== end.checkpointAtStart) {
    state.checkpointOutput = { checkpoint: end.checkpointNow, ...state.relayed };
  }
  // A failure keeps the status that decides the next job: a run with a checkpoint resumes.
  if (end.outcome !== 'failed') state.status = end.outcome;
  const record = state.history[state.history.length - 1];
  record.endedAt = end.endedAt.toISOString();
  record.outcome = end.outcome;
  record.exitCode = end.code;
  if (end.stop) {
    record.reason = end.stop.reason;
    if (end.stop.reasonPending) record.reasonPending = end.stop.reasonPending;
    else delete record.reasonPending;
  }
  return {
    state,
    // A finished run's images must never be resumed, even if the state cannot be saved.
    removeCheckpointOk: end.outcome === 'finished',
    // A program stopped by the signal passed on left the status of that stop, not a final one.
    removeExitStatus: end.outcome === 'failed' && end.terminating,
  };
}
