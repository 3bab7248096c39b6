/**
 * A job from its command line to its exit code, once cli/ckpt-run.ts has parsed it: which
 * scheduler it runs under (scheduler/registry.ts), the checks before anything runs
 * (preflight.ts), the roll-back before a resume (file-rollback.ts), then the supervisor, whose
 * end (end-of-job.ts) returns the exit code.
 */
import { CliError, ExitCode } from '../base/exit-codes.js';
import { jobOutputFiles, type OwnFile } from '../proc/job-output.js';
import type { RunDirPaths } from '../protocol/run-dir.js';
import { isValidJobId } from '../protocol/spool-request.js';
import { detectScheduler } from '../scheduler/registry.js';
import { walltimeEndsAt, type SchedulerContext } from '../scheduler/scheduler.js';
import { saveRunState, type RunState } from '../state/run-state.js';
import { checkCpuFeatures } from './cpu-check.js';
import { rollBackToCheckpoint } from './file-rollback.js';
import type { LaunchSettings } from './launch-settings.js';
import { checkEngine, checkSpoolDir, checkWorkdir, prepareRun, resolveProgram, type PreparedRun } from './preflight.js';
import { localFilesystemWarning } from './shared-filesystem.js';
import { runLauncher } from './supervisor.js';

/** What the command line asks for, parsed and in the launcher's units (cli/ckpt-run.ts); the scheduler says the rest. */
export type JobRequest = Pick<
  LaunchSettings,
  | 'argv' | 'workdir' | 'env' | 'logger' | 'spoolDir' | 'signal' | 'resumeTimeoutMs' | 'dumpTimeoutMs' | 'maxRestarts' | 'selfTimed'
  | 'dumpSafety' | 'intervalMs' | 'keep' | 'pidNamespace' | 'daemonCheck' | 'daemonGraceMs' | 'preemptionPollMs' | 'keepImages' | 'engine'
> & {
  /** --job-id, --run-id: else the scheduler's. */
  jobId?: string;
  runId?: string;
  /** --min-runtime: else the scheduler's rule. */
  minRuntimeMs?: number;
  /** --walltime, in seconds from the job's start: else the scheduler's. */
  walltimeSec?: number;
};

/** Runs the job; resolves to ckpt-run's exit code. */
export function runJob(request: JobRequest): Promise<number> {
  const { argv, workdir, env, logger } = request;
  const scheduler = detectScheduler(env, process.ppid);
  const { jobId, runId } = jobAndRunId(request, scheduler);
  // A program that saves itself needs no daemon, hence no spool.
  const { usesDaemon } = request.engine;
  if (usesDaemon) checkSpoolDir(request.spoolDir);
  checkWorkdir(workdir);
  const run = prepareRun(workdir, runId, argv, new Date());
  checkEngine(run, !usesDaemon);
  if (run.mode === 'fresh') resolveProgram(argv[0], workdir, env);

  for (const warning of scheduler.warnings) logger.log('warn', warning);
  const fsWarning = scheduler.name === 'none' ? undefined : localFilesystemWarning(workdir);
  if (fsWarning) logger.log('warn', fsWarning);
  logger.log('info', `job ${jobId}, run ${runId}: ${run.reason}`);
  const jobOutput = jobOutputFiles(env);
  if (run.mode === 'resume') {
    // Before anything is rolled back: a refused resume leaves the run as it was, for a node that can.
    checkCpuFeatures(run.paths);
    // The output check reads the relayed count before the roll-back lowers it.
    const outputWarning = scheduler.resumedOutputWarning?.(run.state.relayed.stdout);
    for (const warning of [outputWarning, ...rollBackFor(run.paths, run.state, jobId, jobOutput)]) if (warning) logger.log('warn', warning);
  }
  if (request.preemptionPollMs && !scheduler.preempted) {
    throw new CliError(`--preemption-poll: ${scheduler.name === 'none' ? 'no scheduler' : scheduler.name} cannot be asked whether it preempts a job (Slurm can; OAR sends its checkpoint signal)`, ExitCode.Usage);
  }
  return runLauncher(settingsFor(request, scheduler, run, jobId, jobOutput), run);
}

/** This job's id and its run's, from the options or else the scheduler; refused unless plain names. */
function jobAndRunId(request: JobRequest, scheduler: SchedulerContext): { jobId: string; runId: string } {
  const jobId = request.jobId ?? scheduler.jobId;
  if (!jobId) {
    throw new CliError(
      'no job id: neither OAR_JOB_ID nor SLURM_JOB_ID is set and --job-id was not given (to try a job locally: ckpt-run simulate -- COMMAND)',
      ExitCode.NoJobId,
    );
  }
  if (!isValidJobId(jobId)) throw new CliError(`job id ${JSON.stringify(jobId)} is not a plain name`, ExitCode.Usage);
  const runId = request.runId ?? scheduler.runId ?? 'default';
  if (!isValidJobId(runId)) throw new CliError(`run id ${JSON.stringify(runId)} is not a plain name`, ExitCode.Usage);
  return { jobId, runId };
}

/** The supervisor's settings: the request's, completed with what the scheduler says. */
function settingsFor(request: JobRequest, scheduler: SchedulerContext, run: PreparedRun, jobId: string, jobOutput: OwnFile[]): LaunchSettings {
  const { env, walltimeSec, minRuntimeMs, jobId: _asked, runId: _run, ...given } = request;
  const { engine } = request;
  return {
    ...given,
    jobId,
    minRuntimeMs: minRuntimeMs ?? scheduler.minRuntimeSec * 1000,
    walltimeEndsAt: walltimeSec === undefined ? scheduler.walltimeEndsAt : walltimeEndsAt(walltimeSec),
    walltimeEnd: walltimeSec === undefined ? scheduler.walltimeEnd : undefined,
    // Off unless asked, for root too: the namespace kept a restored tree's PIDs free, but the
    // program kept the node's /proc, where /proc/<its own PID> is another process (kthreadd for
    // PID 2): a program that looks itself up by PID (psutil, Java's ProcessHandle, MPI
    // libraries; zdtm's file_locks01–08 and fanotify00) read another's data, and root's dry run showed
    // the program another world than a user's job. A PID in use on restore is retried instead
    // (the daemon waits for it, then exit 99). A program started again needs none.
    pidNamespace: engine.usesDaemon && given.pidNamespace,
    pollMs: 1000,
    idlePollMs: 10_000,
    stopFacts: scheduler.stopFacts,
    pastStopFacts: scheduler.stopFactsOf,
    schedulerJobId: scheduler.jobId,
    jobOutput,
    knownFacts: scheduler.knownFacts,
    preempted: scheduler.preempted,
    requeueCommand: scheduler.requeueCommand,
    env: engine.programEnvironment(env, run.paths, run.state, run.mode === 'resume'),
  };
}

/**
 * The roll-back before a resume; a refusal is recorded as this job's end, so that `status`
 * tells why the checkpoint is not resumed rather than that the next job resumes it.
 */
function rollBackFor(paths: RunDirPaths, state: RunState, jobId: string, jobOutput: OwnFile[]): string[] {
  try {
    return rollBackToCheckpoint(paths, state, jobOutput);
  } catch (error) {
    if (error instanceof CliError && error.exitCode === ExitCode.FileChanged) {
      const now = new Date().toISOString();
      state.history.push({ jobId, startedAt: now, endedAt: now, mode: 'resume', outcome: 'failed', exitCode: error.exitCode, refused: error.message });
      saveRunState(paths.state, state);
    }
    throw error;
  }
}
