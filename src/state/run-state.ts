/**
 * ckpt-run's record of one run, `<run dir>/state.json`. It decides whether a job starts fresh
 * or resumes, so it is written atomically and read strictly: a damaged file stops the job with
 * the file's name and the fix, never a guess that could resume the wrong image.
 */
import { readFileSync } from 'node:fs';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { writeFileAtomic } from '../protocol/atomic-write.js';

export const STATE_SCHEMA = 1;

/** running: a job is (or was, if it died) running it; checkpointed: waiting to be resumed. */
export type RunStatus = 'running' | 'checkpointed' | 'finished' | 'failed';

/**
 * Why a job stopped before its program ended (scheduler/stop-reason.ts decides): its walltime,
 * a preemption (OAR besteffort, Slurm preemptible partition), a person (oardel --checkpoint,
 * scancel), or a crash (the job ended without recording its end: node failure, SIGKILL).
 */
export type StopReason = 'walltime' | 'preemption' | 'manual' | 'crash';

/**
 * A stop whose reason is the clock's guess: the scheduler had not answered by the time the job
 * ended (its exit code waits on nothing but the checkpoint). What the guess was made of, so that
 * the next job, which asks the scheduler about this one, can complete the record
 * (launcher/decisions.ts, completeStop).
 */
export interface PendingStop {
  signal: 'checkpoint' | 'terminate';
  /** When the signal came (ISO). */
  at: string;
  /** When the scheduler would have killed the job (ISO), where it said. */
  walltimeEndsAt?: string;
  /** The job's id as its scheduler knows it, where the scheduler can be asked about a past job (OAR). */
  schedulerJobId?: string;
}

/** Where the final checkpoint's plan took its dump throughput from: this run's checkpoint, this node's daemon (its canary at start), or the default. */
export type ThroughputSource = 'run' | 'daemon' | 'assumed';

export interface JobRecord {
  jobId: string;
  startedAt: string;
  endedAt?: string;
  mode: 'fresh' | 'resume';
  outcome?: 'checkpointed' | 'finished' | 'failed';
  exitCode?: number;
  /** Absent for a job whose program ended on its own, and in records written before it existed. */
  reason?: StopReason;
  /** Set while REASON is the clock's guess, not yet the scheduler's word. */
  reasonPending?: PendingStop;
  /**
   * The job's own output files (its stdout and stderr where they are files, e.g. OAR.ID.stdout,
   * slurm-ID.out, a dry run's redirected output): they change in every job, and a resume says
   * nothing of them.
   */
  output?: Array<{ path: string; inode: number }>;
  /** The self-timed final checkpoint's plan as last said (launcher/final-plan.ts), where the walltime was known. */
  finalPlan?: { at: string; bytes: number; bytesPerSec: number; source: ThroughputSource; estimateMs: number };
  /** Why this job refused to resume the checkpoint (a file it cannot put back): the next job refuses too until it is fixed. */
  refused?: string;
}

export interface RunState {
  schema: number;
  runId: string;
  command: string[];
  workdir: string;
  createdAt: string;
  status: RunStatus;
  /** The program's own exit code once it finished. */
  exitCode?: number;
  /** How many times the run was started again: each exit 99, and each resume after a job that did not exit 99 (a crash). */
  restarts: number;
  /** Bytes of the program's output already relayed to a job's stdout/stderr. */
  relayed: { stdout: number; stderr: number };
  /**
   * The sizes of the output files when the checkpoint CHECKPOINT (its checkpoint_ok's identity)
   * was made: a job that resumes it rolls back what a later job, killed without a new
   * checkpoint, had appended (launcher/file-rollback.ts).
   */
  checkpointOutput?: { checkpoint: string; stdout: number; stderr: number };
  history: JobRecord[];
}

export function newRunState(runId: string, command: string[], workdir: string, now: Date): RunState {
  return {
    schema: STATE_SCHEMA,
    runId,
    command,
    workdir,
    createdAt: now.toISOString(),
    status: 'running',
    restarts: 0,
    relayed: { stdout: 0, stderr: 0 },
    history: [],
  };
}

function corrupt(path: string, why: string): CliError {
  return new CliError(
    `state file ${path} is unusable (${why}); ckpt-run will not guess which checkpoint to resume. ` +
      `To start the run afresh, remove its folder: rm -r ${path.replace(/\/state\.json$/, '')}`,
    ExitCode.StateCorrupt,
  );
}

function isCount(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0;
}

function isOutputMark(value: unknown): value is RunState['checkpointOutput'] {
  const mark = value as Record<string, unknown> | null;
  return mark !== null && typeof mark === 'object' && typeof mark.checkpoint === 'string' && isCount(mark.stdout) && isCount(mark.stderr);
}

/** Reads a state file; undefined when there is none, CliError when it is damaged. */
export function loadRunState(path: string): RunState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw corrupt(path, (error as Error).message);
  }
  let value: RunState;
  try {
    value = JSON.parse(text) as RunState;
  } catch {
    throw corrupt(path, text.length === 0 ? 'empty' : 'not valid JSON, truncated?');
  }
  if (value === null || typeof value !== 'object') throw corrupt(path, 'not an object');
  if (value.schema !== STATE_SCHEMA) throw corrupt(path, `schema ${String(value.schema)}, expected ${STATE_SCHEMA}`);
  const valid =
    typeof value.runId === 'string' &&
    Array.isArray(value.command) &&
    typeof value.workdir === 'string' &&
    ['running', 'checkpointed', 'finished', 'failed'].includes(value.status) &&
    isCount(value.restarts) &&
    value.relayed !== null &&
    typeof value.relayed === 'object' &&
    isCount(value.relayed.stdout) &&
    isCount(value.relayed.stderr) &&
    (value.checkpointOutput === undefined || isOutputMark(value.checkpointOutput)) &&
    Array.isArray(value.history);
  if (!valid) throw corrupt(path, 'fields missing or of the wrong type');
  return value;
}

export function saveRunState(path: string, state: RunState): void {
  writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
}
