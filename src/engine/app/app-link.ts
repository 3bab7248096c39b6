/**
 * The application-level engine's link (--engine app): no daemon, the program saves itself. Its
 * request is the save signal to the program's whole process group (a wrapper script, mpirun or
 * a launcher and their children all get it); its answer is the program's exit with the agreed
 * code, which this link publishes as a daemon publishes a dump: checkpoint_ok written, the exit
 * status taken away. The supervisor then sees what it sees after a dump (a new checkpoint_ok,
 * the program gone without a status) and exits 99; the next job's preflight finds the
 * checkpoint and starts the program again, which resumes from its own state.
 */
import { rmSync } from 'node:fs';
import { constants } from 'node:os';
import { writeFileAtomic } from '../../protocol/atomic-write.js';
import { checkpointIdentity } from '../../protocol/checkpoint-identity.js';
import { PROGRAM_SAVED_MARK, type RunDirPaths } from '../../protocol/run-dir.js';
import { readOrEmpty, signalGroup } from '../../proc/processes.js';
import type { RunState, StopReason } from '../../state/run-state.js';
import type { CheckpointLink, ExitAnswerOptions, ExitAnswers, LinkContext, PeriodicAnswer, RunFiles } from '../link.js';
import { optionName } from '../options.js';
import { APP_OPTIONS, type AppSettings, type SavedExit } from './app-options.js';

/**
 * Whether the program's exit after the save signal SIGNAL says it saved its state. A death by
 * that very signal never does, whatever was agreed: the program did not catch it.
 */
export function exitMeansSaved(exitCode: number, saved: SavedExit, signal: NodeJS.Signals): boolean {
  if (exitCode === 128 + constants.signals[signal]) return false;
  return saved === 'any' || exitCode === saved.code;
}

/** Its settings, and what it takes of the job (the reason known at once: the scheduler's word comes later, tellReason). */
export type AppLinkOptions = AppSettings & Pick<LinkContext, 'paths' | 'reasonNow'>;

/** The options the machine's messages send the user to. */
export const APP_EXIT_OPTIONS: ExitAnswerOptions = {
  signal: optionName(APP_OPTIONS.signal),
  grace: optionName(APP_OPTIONS.grace),
  savedCode: optionName(APP_OPTIONS.savedCode),
};

export class AppLink implements CheckpointLink {
  checkpointOkAtRequest: string | undefined;
  readonly exitAnswers: ExitAnswers;
  /** The save signal went out: the program's next exit may be its "saved". */
  private asked = false;

  constructor(private readonly options: AppLinkOptions) {
    // A status an earlier job's program left (e.g. it died of the save signal) is not this one's.
    rmSync(options.paths.exitStatus, { force: true });
    this.exitAnswers = {
      signal: options.signal,
      graceMs: options.graceMs,
      periodicSignal: options.periodicSignal,
      options: APP_EXIT_OPTIONS,
    };
  }

  /** A program that saves itself resumes by being started again (the machine spawns it): no restore is ever asked of this link. */
  requestResume(): void {
    throw new Error('a program that saves itself is started again, not restored (exitAnswers)');
  }

  requestCheckpoint(pid: number, _answerBy: number, leaveRunning: boolean): void {
    const { paths, periodicSignal, reasonNow } = this.options;
    // The program leads its process group (the shim's session): the group is the whole program.
    if (leaveRunning) {
      if (!periodicSignal) return;
      signalGroup(pid, periodicSignal);
      // The run can resume from the program's own state from now on: a crash (no final save)
      // leaves it resumable, and the next job starts the program with CKPT_RUN_RESUMED=1. The
      // save itself is not confirmed: the program saves atomically (write, then rename).
      writeFileAtomic(paths.checkpointOk, `${PROGRAM_SAVED_MARK}: ${periodicSignal} sent (periodic save)\n`);
      return;
    }
    this.checkpointOkAtRequest = checkpointIdentity(paths.checkpointOk);
    // Written before the signal: the program's handler reads it (its environment cannot change).
    // What the job knows at once; tellReason() writes the scheduler's word when it comes.
    this.tellReason(reasonNow());
    this.asked = true;
    signalGroup(pid, this.options.signal);
  }

  /** Why the program is asked to save, in the file its handler reads ($CKPT_RUN_REASON_FILE). */
  tellReason(reason: StopReason): void {
    writeFileAtomic(this.options.paths.saveReason, `${reason}\n`);
  }

  /** No daemon dumps a program that saves itself: its save time is its own (--app-grace). */
  daemonDumpRate(): undefined {
    return undefined;
  }

  /** A program that saves itself on a signal and runs on can be saved periodically; the signal is its own. */
  periodic(): PeriodicAnswer {
    return this.options.periodicSignal ? { ok: true } : { ok: false, askAgain: false, why: 'no --app-periodic-signal: the signal on which the program saves and runs on' };
  }

  /**
   * FILES as the daemon protocol would show them: an exit after the save signal that means
   * "saved" becomes a new checkpoint_ok and no exit status, on disk first (the next job reads it).
   */
  answer(files: RunFiles): RunFiles {
    const { paths, saved, signal } = this.options;
    if (!this.asked || files.exitStatus === undefined || !exitMeansSaved(files.exitStatus, saved, signal)) return files;
    this.asked = false;
    writeFileAtomic(paths.checkpointOk, `${PROGRAM_SAVED_MARK}: exit ${files.exitStatus} after ${signal}\n`);
    rmSync(paths.exitStatus, { force: true });
    return { ...files, exitStatus: undefined, checkpointOk: checkpointIdentity(paths.checkpointOk) };
  }

  /** Nothing to take back: a signal, once sent, is the program's. */
  close(): void {}
}

/**
 * The program's environment under --engine app: where it stands (restarts, resumed), its run
 * folder for its state, and where each save's reason is written. CKPT_RUN_REASON is the reason
 * of the save this job resumes from; the environment cannot change once the program runs.
 */
export function appEnvironment(env: NodeJS.ProcessEnv, paths: RunDirPaths, state: RunState, resumed: boolean): NodeJS.ProcessEnv {
  const { CKPT_RUN_RESUMED: _resumed, CKPT_RUN_REASON: _reason, ...rest } = env;
  const reason = resumed ? readOrEmpty(paths.saveReason).trim() : '';
  return {
    ...rest,
    CKPT_RUN_RESTARTS: String(state.restarts),
    CKPT_RUN_DIR: paths.dir,
    CKPT_RUN_REASON_FILE: paths.saveReason,
    ...(resumed ? { CKPT_RUN_RESUMED: '1' } : {}),
    ...(reason ? { CKPT_RUN_REASON: reason } : {}),
  };
}
