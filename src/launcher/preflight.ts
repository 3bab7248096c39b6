/**
 * Everything checked before the job touches anything: each bad input becomes one clear line and
 * its own exit code. Also decides whether this job starts the run afresh or resumes it.
 */
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { readOrEmpty } from '../proc/processes.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { PROGRAM_SAVED_MARK, runDirFor, runDirPaths, type RunDirPaths } from '../protocol/run-dir.js';
import { loadRunState, newRunState, type RunState } from '../state/run-state.js';

export interface PreparedRun {
  mode: 'fresh' | 'resume';
  paths: RunDirPaths;
  state: RunState;
  /** Why this mode was chosen, for the log. */
  reason: string;
  /** The checkpoint a resume is for (checkpoint_ok's identity when the job started): its files are rolled back to it. */
  checkpoint?: string;
}

function isWritableDir(dir: string): 'ok' | 'missing' | 'not a directory' | 'not writable' {
  let stats;
  try {
    stats = statSync(dir);
  } catch {
    return 'missing';
  }
  if (!stats.isDirectory()) return 'not a directory';
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    return 'not writable';
  }
  return 'ok';
}

export function checkSpoolDir(spoolDir: string): void {
  const verdict = isWritableDir(spoolDir);
  if (verdict === 'ok') return;
  const hint =
    verdict === 'missing'
      ? 'is the checkpoint daemon installed on this node?'
      : 'the node daemon creates it mode 1777;';
  throw new CliError(
    `spool directory ${spoolDir} is ${verdict}: ${hint} (set it with --spool-dir or CKPT_SPOOL_DIR)`,
    ExitCode.SpoolDir,
  );
}

export function checkWorkdir(workdir: string): void {
  const verdict = isWritableDir(workdir);
  if (verdict === 'ok') return;
  throw new CliError(
    `working directory ${workdir} is ${verdict}: ckpt-run keeps the checkpoint under ` +
      `${workdir}/.ckpt-run/; run the job from a writable directory on a shared filesystem`,
    ExitCode.Workdir,
  );
}

/** Finds the program as the shell would; CliError 127/126 when it cannot be run. */
export function resolveProgram(program: string, workdir: string, env: NodeJS.ProcessEnv): string {
  const candidates = program.includes('/')
    ? [isAbsolute(program) ? program : resolve(workdir, program)]
    : (env.PATH ?? '/usr/bin:/bin').split(delimiter).map((dir) => join(dir || '.', program));
  const existing = candidates.filter((path) => existsSync(path) && statSync(path).isFile());
  if (existing.length === 0) {
    throw new CliError(`program not found: ${program} (not in PATH, or no such file)`, ExitCode.NotFound);
  }
  for (const path of existing) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // try the next one, as the shell does
    }
  }
  throw new CliError(`program is not executable: ${existing[0]} (chmod +x it?)`, ExitCode.NotExecutable);
}

/**
 * Creates `.ckpt-run/RUNID` one level at a time: root passes every access() check, so the real
 * test of a writable working directory is the mkdir itself (and Node's recursive mkdir loops
 * forever on some pseudo-filesystems such as /proc).
 */
function makeRunDir(workdir: string, runDir: string): void {
  for (const dir of [dirname(runDir), runDir]) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new CliError(
        `working directory ${workdir} is not writable (cannot create ${dir}: ${(error as NodeJS.ErrnoException).code}); ` +
          'run the job from a writable directory on a shared filesystem',
        ExitCode.Workdir,
      );
    }
  }
}

/**
 * A run resumes with the engine that checkpointed it: the daemon cannot restore a program's own
 * save, and starting the program again would throw a CRIU image's progress away.
 */
export function checkEngine(run: PreparedRun, programSaves: boolean): void {
  if (run.mode !== 'resume') return;
  const programSaved = readOrEmpty(run.paths.checkpointOk).startsWith(PROGRAM_SAVED_MARK);
  if (programSaved === programSaves) return;
  const [made, resume] = programSaved ? ['the program itself (--engine app)', 'app'] : ["the node's checkpoint daemon (--engine criu)", 'criu'];
  throw new CliError(
    `the checkpoint in ${run.paths.dir} was made by ${made}: resume it with --engine ${resume} (or start the run afresh: rm -r ${run.paths.dir})`,
    ExitCode.Usage,
  );
}

/**
 * The run's restarts once this job resumes it: a job that exited 99 counted its own; one that
 * did not (a crash, a kill, a failed resume) leaves this resume to count, or `ckpt-run status`
 * and --max-restarts would miss every restart after a crash.
 */
export function restartsOnResume(state: RunState): number {
  const last = state.history.at(-1);
  return last === undefined || last.outcome === 'checkpointed' ? state.restarts : state.restarts + 1;
}

/** Reads (or starts) the run's record and decides: fresh start or resume. */
export function prepareRun(workdir: string, runId: string, argv: string[], now: Date): PreparedRun {
  const paths = runDirPaths(runDirFor(workdir, runId));
  const previous = loadRunState(paths.state);
  const hasCheckpoint = existsSync(paths.checkpointOk);

  // The previous job ended without writing its end: it crashed (unless it had said why it stopped).
  const lastJob = previous?.history.at(-1);
  if (lastJob && lastJob.endedAt === undefined) lastJob.reason ??= 'crash';
  if (previous && previous.status !== 'finished' && hasCheckpoint) {
    previous.restarts = restartsOnResume(previous);
    return { mode: 'resume', paths, state: previous, reason: `resuming the checkpoint in ${paths.dir}`, checkpoint: checkpointIdentity(paths.checkpointOk) };
  }
  if (!previous && hasCheckpoint) {
    throw new CliError(
      `${paths.checkpointOk} exists but ${paths.state} does not: this checkpoint was not made ` +
        `by ckpt-run and will not be resumed. To start afresh: rm -r ${paths.dir}`,
      ExitCode.StateCorrupt,
    );
  }

  // A finished run, or one whose jobs never completed a checkpoint, starts over: its old
  // images and status must not be mistaken for this run's.
  const reason = !previous
    ? 'starting a new run'
    : previous.status === 'finished'
      ? `the previous run in ${paths.dir} finished (exit code ${previous.exitCode}): starting a new run`
      : `the previous run in ${paths.dir} has no checkpoint: starting it again from the beginning`;
  rmSync(paths.dir, { recursive: true, force: true });
  makeRunDir(workdir, paths.dir);
  return { mode: 'fresh', paths, state: newRunState(runId, argv, workdir, now), reason };
}
