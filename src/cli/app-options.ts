/** The application-level engine's options (--app-*), shared by ckpt-run and its dry run. */
import { Command } from 'commander';
import { CliError, ExitCode } from '../base/exit-codes.js';
import type { LaunchSettings } from '../launcher/launch-settings.js';
import { secondsOption, signalOption, wholeNumberOption } from './run-cli.js';

/** HTCondor's self-checkpointing jobs agree on 85 as well (SuccessCheckpointExitCode in its manual). */
export const DEFAULT_SAVED_CODE = 85;

export interface AppCliOptions {
  appSignal?: NodeJS.Signals;
  appSavedCode?: number;
  appAnyExitSaved?: boolean;
  appGrace?: number;
  appPeriodicSignal?: NodeJS.Signals;
}

export const APP_HELP = `
Engines (--engine)
  criu (default)  the node's ckpt-daemon dumps the program with CRIU and restores it: nothing to
                  change in the program; needs ckpt-daemon on the node, one node, no GPU.
  app             the program saves itself: on the checkpoint signal ckpt-run passes --app-signal
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

export function addAppOptions(command: Command): Command {
  return command
    .option('--app-signal <name>', 'app: the signal that asks the program to save and exit, sent to its whole process group (default: the checkpoint signal received)', signalOption(['SIGKILL', 'SIGSTOP'], 'the save signal'))
    .option('--app-saved-code <n>', `app: the exit code by which the program says "saved, run me again" (default ${DEFAULT_SAVED_CODE})`, wholeNumberOption)
    .option(
      '--app-any-exit-saved',
      'app: any exit after the save signal counts as saved (GROMACS mdrun exits 0 once it wrote its checkpoint on SIGTERM). ' +
        'Risk: a program that finished at that very moment is started once more',
    )
    .option(
      '--app-periodic-signal <name>',
      'app, with --interval: the signal on which the program saves and runs on, sent every --interval to its process group; nothing is awaited ' +
        '(a program that does not catch it dies of it: no default)',
      signalOption(['SIGKILL', 'SIGSTOP'], 'the periodic save signal'),
    )
    .option('--app-grace <seconds>', 'app: how long the program may take to save and exit (default: until 5 s before the walltime where known, else 60 s; never past that)', secondsOption);
}

/** The --app-* options, checked: the launcher's app settings, or undefined for the CRIU engine. */
export function appSettings(engine: string, options: AppCliOptions, checkpointSignal: NodeJS.Signals, interval: boolean): LaunchSettings['app'] {
  const given = Object.entries({
    '--app-signal': options.appSignal,
    '--app-saved-code': options.appSavedCode,
    '--app-any-exit-saved': options.appAnyExitSaved,
    '--app-grace': options.appGrace,
    '--app-periodic-signal': options.appPeriodicSignal,
  })
    .filter(([, value]) => value !== undefined)
    .map(([name]) => name);
  if (engine !== 'app') {
    if (given.length) throw new CliError(`${given.join(', ')}: only with --engine app (add it, or drop the option)`, ExitCode.Usage);
    return undefined;
  }
  if (options.appAnyExitSaved && options.appSavedCode !== undefined) {
    throw new CliError('--app-saved-code and --app-any-exit-saved exclude each other: choose one', ExitCode.Usage);
  }
  if (interval && !options.appPeriodicSignal) {
    throw new CliError('--interval with --engine app needs --app-periodic-signal: the signal on which your program saves and runs on', ExitCode.Usage);
  }
  if (!interval && options.appPeriodicSignal) throw new CliError('--app-periodic-signal: only with --interval (how often to send it)', ExitCode.Usage);
  const code = options.appSavedCode ?? DEFAULT_SAVED_CODE;
  if (code > 255) throw new CliError(`--app-saved-code ${code}: an exit code is 0 to 255`, ExitCode.Usage);
  return {
    signal: options.appSignal ?? checkpointSignal,
    saved: options.appAnyExitSaved ? 'any' : { code },
    graceMs: options.appGrace === undefined ? undefined : options.appGrace * 1000,
    periodicSignal: options.appPeriodicSignal,
  };
}

/** The same options again, as arguments for a ckpt-run job (the dry run starts real jobs). */
export function appArguments(options: AppCliOptions): string[] {
  return [
    ...(options.appSignal ? ['--app-signal', options.appSignal] : []),
    ...(options.appSavedCode === undefined ? [] : ['--app-saved-code', String(options.appSavedCode)]),
    ...(options.appAnyExitSaved ? ['--app-any-exit-saved'] : []),
    ...(options.appGrace === undefined ? [] : ['--app-grace', String(options.appGrace)]),
    ...(options.appPeriodicSignal ? ['--app-periodic-signal', options.appPeriodicSignal] : []),
  ];
}
