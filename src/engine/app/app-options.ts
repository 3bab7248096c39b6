/**
 * The app engine's options (--app-*), as ckpt-run and its dry run take them (cli registers what
 * APP_OPTIONS declares), its settings made of them, and its part of ckpt-run --help.
 */
import { CliError, ExitCode } from '../../base/exit-codes.js';
import type { CommonOptions, EngineOptions, OptionValues } from '../options.js';

/** HTCondor's self-checkpointing jobs agree on 85 as well (SuccessCheckpointExitCode in its manual). */
export const DEFAULT_SAVED_CODE = 85;

/** In the order of ckpt-run --help. */
export const APP_OPTIONS = {
  signal: {
    flags: '--app-signal <name>',
    help: 'app: the signal that asks the program to save and exit, sent to its whole process group (default: the checkpoint signal received)',
    value: { kind: 'signal', refused: ['SIGKILL', 'SIGSTOP'], role: 'the save signal' },
  },
  savedCode: {
    flags: '--app-saved-code <n>',
    help: `app: the exit code by which the program says "saved, run me again" (default ${DEFAULT_SAVED_CODE})`,
    value: { kind: 'wholeNumber' },
  },
  anyExitSaved: {
    flags: '--app-any-exit-saved',
    help:
      'app: any exit after the save signal counts as saved (GROMACS mdrun exits 0 once it wrote its checkpoint on SIGTERM). ' +
      'Risk: a program that finished at that very moment is started once more',
  },
  periodicSignal: {
    flags: '--app-periodic-signal <name>',
    help:
      'app, with --interval: the signal on which the program saves and runs on, sent every --interval to its process group; nothing is awaited ' +
      '(a program that does not catch it dies of it: no default)',
    value: { kind: 'signal', refused: ['SIGKILL', 'SIGSTOP'], role: 'the periodic save signal' },
  },
  grace: {
    flags: '--app-grace <seconds>',
    help: 'app: how long the program may take to save and exit (default: until 5 s before the walltime where known, else 60 s; never past that)',
    value: { kind: 'seconds' },
  },
} as const satisfies EngineOptions;

/** Which exit of a program that saves itself means "saved, run me again" (--app-saved-code, --app-any-exit-saved). */
export type SavedExit = { code: number } | 'any';

/** --engine app's settings. */
export interface AppSettings {
  /** The save signal (--app-signal). */
  signal: NodeJS.Signals;
  /** The periodic save signal (--app-periodic-signal, with --interval): the program saves and runs on. */
  periodicSignal?: NodeJS.Signals;
  saved: SavedExit;
  /** --app-grace: how long the program may take to save and exit (undefined: launcher/machine-state.ts decides). */
  graceMs?: number;
}

/** The --app-* options, checked: the app engine's settings. */
export function appSettings(values: OptionValues<typeof APP_OPTIONS>, { checkpointSignal, interval }: CommonOptions): AppSettings {
  if (values.anyExitSaved && values.savedCode !== undefined) {
    throw new CliError('--app-saved-code and --app-any-exit-saved exclude each other: choose one', ExitCode.Usage);
  }
  if (interval && !values.periodicSignal) {
    throw new CliError('--interval with --engine app needs --app-periodic-signal: the signal on which your program saves and runs on', ExitCode.Usage);
  }
  if (!interval && values.periodicSignal) throw new CliError('--app-periodic-signal: only with --interval (how often to send it)', ExitCode.Usage);
  const code = values.savedCode ?? DEFAULT_SAVED_CODE;
  if (code > 255) throw new CliError(`--app-saved-code ${code}: an exit code is 0 to 255`, ExitCode.Usage);
  return {
    signal: values.signal ?? checkpointSignal,
    saved: values.anyExitSaved ? 'any' : { code },
    graceMs: values.grace === undefined ? undefined : values.grace * 1000,
    periodicSignal: values.periodicSignal,
  };
}

/** Its lines in ckpt-run --help's "Engines (--engine)". */
export const APP_HELP = `  app             the program saves itself: on the checkpoint signal ckpt-run passes --app-signal
                  to the program's whole process group and waits (--app-grace, never past the
                  walltime) for it to exit. Exit --app-saved-code (85) means "saved, run me again":
                  ckpt-run exits 99 (Slurm: requeues), and the next job starts the program again.
                  Any other exit is the program's own end, passed through; a death by the save
                  signal itself (it does not catch it) is a failure, never a 99; a program still
                  running after the grace is killed (exit 16), never a 99. No daemon, no root.
                  With --interval, --app-periodic-signal goes to the program every interval: it
                  saves and runs on (nothing is awaited), so that a crash loses little.
  What the program finds in its environment (app):
    CKPT_RUN_RESTARTS      how many times the run was resubmitted (0 on the first job)
    CKPT_RUN_RESUMED=1     set when the program saved itself in an earlier job: resume from it
    CKPT_RUN_DIR           the run folder: a good place for its state (kept until the run finishes)
    CKPT_RUN_REASON_FILE   a file that holds why it is asked to save (walltime, preemption or
                           manual), written before each save signal from what ckpt-run knows
                           then, and again once the scheduler has said (within 10 s). Read it in
                           the handler: a running program's environment cannot change
    CKPT_RUN_REASON        in a resumed job: why the save it resumes from was asked
  A checkpoint signal before the program runs: it is stopped at once (it could not have set up
  its handler) and the job resubmitted; its saved state is unchanged. Keep the same --engine
  across the jobs of a run. Examples: examples/numpy-loop.py, examples/gromacs-job.sh.
    exec ckpt-run --engine app -- python3 train.py
`;
