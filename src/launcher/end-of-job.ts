/**
 * The end of a job, in one place and in its order (as submitit's checkpoint_and_try_requeue):
 *  1. the exit code, decided by the pure machine (machine-checkpoint.ts: resubmit gives 99 once
 *     a checkpoint completed with the program gone, within --max-restarts; else the program's own
 *     code, or a failure's), handed here with its outcome;
 *  2. why the job stops, as the record says it now (job-stop.ts): the scheduler's word, or the
 *     clock's guess marked pending, which the next job completes;
 *  3. the run record that decides the next job (decisions.ts: endOfJobRecord), and what leaves
 *     the run folder with it;
 *  4. a finished run's images released (--keep-images keeps them);
 *  5. the resubmission: exit 99, and where an exit code asks for nothing (Slurm) the scheduler's
 *     requeue first: refused, the job fails with RequeueFailed.
 */
import { rmSync } from 'node:fs';
import { ExitCode } from '../base/exit-codes.js';
import type { Logger } from '../log/logger.js';
import type { RunDirPaths } from '../protocol/run-dir.js';
import { requeueJob } from '../scheduler/requeue.js';
import { releaseFinishedImages } from '../state/run-images.js';
import { saveRunState, type RunState } from '../state/run-state.js';
import { endOfJobRecord, type JobEnd, type StopRecord } from './decisions.js';

export interface EndOfJob {
  /** The exit code the machine decided. */
  code: number;
  paths: RunDirPaths;
  /** The run record as the job leaves it (its last history entry is this job's). */
  run: RunState;
  /** Why the job stops, as the record says it now (undefined: no signal came). */
  stop: StopRecord | undefined;
  /** Closes what is still open (the link, the output relay) before the record is written. */
  tidy(): void;
  /** How the job ends as the world stands once tidied: what the record needs. */
  jobEnd(): JobEnd;
  keepImages: boolean;
  /** The scheduler's command that resubmits the job, where exit 99 does not (scheduler.ts). */
  requeueCommand?: string[];
  logger: Logger;
}

/** Ends the job (the sources of events stopped already); resolves to ckpt-run's exit code. */
export async function endJob(end: EndOfJob): Promise<number> {
  const { code, paths, logger } = end;
  // The exit code is what the scheduler acts on: it waits for no answer about the stop's reason.
  const pending = pendingStopLine(end.stop);
  if (pending) logger.log('info', pending);
  // Whatever fails while tidying up, the exit code decided above is the one the job returns.
  try {
    end.tidy();
    const record = endOfJobRecord(end.run, end.jobEnd());
    if (record.removeCheckpointOk) for (const path of [paths.checkpointOk, paths.checkpointStats]) rmSync(path, { force: true });
    if (record.removeExitStatus) rmSync(paths.exitStatus, { force: true });
    saveRunState(paths.state, record.state);
  } catch (error) {
    logger.log('error', `while ending the job: ${(error as Error).message} (state file ${paths.state})`);
  }
  if (!end.keepImages) releaseFinishedImages(paths, logger);
  if (code !== ExitCode.Resubmit || !end.requeueCommand) return code;
  return (await requeueJob(end.requeueCommand, logger)) ? code : ExitCode.RequeueFailed;
}

/** What the log says of a stop whose reason the scheduler has not given yet; undefined when it has (or no signal came). */
export function pendingStopLine(stop: StopRecord | undefined): string | undefined {
  if (!stop?.reasonPending) return undefined;
  const next = stop.reasonPending.schedulerJobId === undefined ? "it stays the clock's guess" : 'the next job asks the scheduler and completes it';
  return `the scheduler has not said yet why this job stops: the record says ${stop.reason}, from the clock; ${next}`;
}
