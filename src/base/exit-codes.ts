/**
 * Every exit code of ckpt-run has one meaning. When the program ends on its own, ckpt-run exits
 * with the program's code instead (whatever it is), and says so in its log.
 */
export const ExitCode = {
  Usage: 2,
  ResumeTimeout: 3,
  RestoreFailed: 4,
  ProgramLost: 5,
  NoJobId: 6,
  SpoolDir: 7,
  Workdir: 8,
  StateCorrupt: 9,
  MaxRestarts: 10,
  DaemonAbsent: 11,
  RequeueFailed: 12,
  /** ckpt-run simulate only. */
  DryRunFailed: 13,
  CleanIncomplete: 14,
  /** A file the checkpoint's program holds open for writing shrank, was replaced or is gone. */
  FileChanged: 15,
  /** --engine app: the program did not exit in time after the save signal. */
  AppTimeout: 16,
  /** This node's CPU lacks instruction-set features of the node that made the checkpoint. */
  CpuMissing: 17,
  Internal: 70,
  Resubmit: 99,
  NotExecutable: 126,
  NotFound: 127,
} as const;

/** ckpt-daemon's exit codes (its --help lists them): NotRoot and NoCriu come from the CRIU engine's start (engine/criu/daemon-engine.ts). */
export const DaemonExit = { Usage: 2, Spool: 3, NotRoot: 4, NoCriu: 5, ImageKey: 6, Internal: 70 } as const;

export const EXIT_CODE_HELP: ReadonlyArray<[string, string]> = [
  ['N', "the program ended on its own with code N (also after any number of restores)"],
  ['99', 'a checkpoint completed: the scheduler resubmits the job, which resumes it'],
  ['2', 'usage error (bad option, no command)'],
  ['3', 'resume timed out: the daemon wrote no checkpoint/pidfile (--resume-timeout)'],
  ['4', "restore failed: the daemon's reason is logged; the checkpoint is kept"],
  ['5', 'the program vanished with no exit status and no completed checkpoint'],
  ['6', 'no job id: OAR_JOB_ID and SLURM_JOB_ID unset, and no --job-id'],
  ['7', 'spool directory missing or not writable (--spool-dir)'],
  ['8', 'working directory not writable'],
  ['9', "ckpt-run's state file is corrupt or missing (the message names the file)"],
  ['10', 'resubmission cap reached (--max-restarts); the checkpoint is kept'],
  ['11', 'no checkpoint daemon answers on this node'],
  ['12', 'Slurm: the checkpoint completed but scontrol requeue failed (the checkpoint is kept)'],
  ['13', 'simulate: a checkpoint or restore failed during the dry run (the verdict names it and what to do)'],
  ['14', 'ckpt-run clean --yes: some images could not be removed (each is named)'],
  ['15', 'cannot resume: a file the checkpointed program writes is shorter than at the checkpoint, replaced or gone (named)'],
  ['16', '--engine app: the program did not exit within --app-grace of the save signal; killed (its last save is kept)'],
  ['17', "cannot resume here: this node's CPU lacks instruction-set features of the checkpoint's node (named, with the scheduler property to ask for); the checkpoint is kept"],
  ['70', 'internal error in ckpt-run (please report it)'],
  ['126', 'the program is not executable'],
  ['127', 'the program was not found'],
  ['128+S', 'ckpt-run was stopped by signal S (SIGTERM/SIGINT are passed to the program first)'],
];

/** A failure ckpt-run reports as one line and a distinct exit code, never a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
