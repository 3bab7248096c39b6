/** `ckpt-run status`: where each run of a working directory stands, read from its run folder. */
import { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { formatMegabytes } from '../base/sizes.js';
import { describeCarried, describeLeft, describeStays, type LocalState } from '../protocol/local-state.js';
import { imagesBytes, parseCheckpointStats, parsePagesIn, PROGRAM_SAVED_MARK, runDirFor, runDirPaths, RUNS_FOLDER, type KeptFigures, type PagesIn } from '../protocol/run-dir.js';
import { SOURCE_WORDS } from '../launcher/final-plan.js';
import { diskUse, runIdsIn, type DiskUse } from '../state/run-images.js';
import { loadRunState, type JobRecord, type RunState } from '../state/run-state.js';

export interface RunStatus {
  runId: string;
  /** running (or killed while it ran), checkpointed, finished, failed; or unusable. */
  status: string;
  restarts?: number;
  exitCode?: number;
  lastJob?: JobRecord;
  /** Every job of the run, the last one included, with why each stopped. */
  jobs?: JobRecord[];
  /**
   * The last complete checkpoint: when it was marked, its images' size, what the daemon said of
   * it, and whether the program saved itself (--engine app).
   */
  checkpoint?: { at: string; bytes: number; frozenMs?: number; periodic?: boolean; savedByProgram: boolean; localState?: LocalState; kept?: KeptFigures };
  command?: string[];
  /** The last lazy restore: when every page of the program's memory was in. */
  lazyRestore?: PagesIn;
  /** What the run folder takes on disk, its checkpoint images included. */
  disk: DiskUse;
  /** Why the state file cannot be used, for an unusable run. */
  problem?: string;
}

function statusOf(workdir: string, runId: string): RunStatus {
  const paths = runDirPaths(runDirFor(workdir, runId));
  const disk = diskUse(paths);
  let state: RunState | undefined;
  try {
    state = loadRunState(paths.state);
  } catch (error) {
    return { runId, status: 'unusable', problem: (error as Error).message, disk };
  }
  if (!state) return { runId, status: 'unusable', problem: `${paths.state} is missing`, disk };
  const stats = existsSync(paths.checkpointStats) ? parseCheckpointStats(readFileSync(paths.checkpointStats, 'utf8')) : undefined;
  const checkpoint = state.status !== 'finished' && existsSync(paths.checkpointOk)
    ? {
        at: statSync(paths.checkpointOk).mtime.toISOString(),
        bytes: existsSync(paths.images) ? imagesBytes(paths.images) : 0,
        ...(stats ? { frozenMs: stats.frozenMs, periodic: stats.leftRunning, localState: stats.localState, ...(stats.kept ? { kept: stats.kept } : {}) } : {}),
        savedByProgram: readFileSync(paths.checkpointOk, 'utf8').startsWith(PROGRAM_SAVED_MARK),
      }
    : undefined;
  return {
    runId,
    status: state.status,
    restarts: state.restarts,
    exitCode: state.exitCode,
    lastJob: state.history.at(-1),
    jobs: state.history,
    checkpoint,
    command: state.command,
    lazyRestore: existsSync(paths.pagesIn) ? parsePagesIn(readFileSync(paths.pagesIn, 'utf8')) : undefined,
    disk,
  };
}

/** Every run in WORKDIR's run folders, by run id. */
export function runStatuses(workdir: string): RunStatus[] {
  return runIdsIn(workdir).map((runId) => statusOf(workdir, runId));
}

/**
 * state.json keeps "running" after a job that ended without a checkpoint (the status decides
 * the next job); a person wants to know whether anything runs and what the next job will do.
 */
function describeStatus(run: RunStatus): string {
  const next = run.checkpoint ? 'the next job resumes the last checkpoint' : 'the next job starts it again from the beginning';
  if (run.status === 'finished') return `finished, exit code ${run.exitCode}`;
  if (run.lastJob?.refused) return `stopped: its last job refused to resume the checkpoint, and the next job refuses too until the cause is fixed: ${run.lastJob.refused}`;
  if (run.status === 'checkpointed') return `checkpointed: ${next}`;
  if (run.status !== 'running') return run.status;
  if (run.lastJob?.outcome === undefined) return `running (or its last job was killed before it could record its end); if it is not running, ${next}`;
  return `stopped: its last job ended without a checkpoint; ${next}`;
}

function describeCheckpoint(checkpoint: NonNullable<RunStatus['checkpoint']>): string {
  if (checkpoint.savedByProgram) return `${checkpoint.at}, saved by the program itself (--engine app), its state in the run folder`;
  const frozen = checkpoint.frozenMs === undefined ? '' : `, program frozen ${Math.round(checkpoint.frozenMs)} ms`;
  const kind = checkpoint.periodic === undefined ? '' : checkpoint.periodic ? ' (periodic: the program ran on)' : ' (final: the program stopped)';
  const carried = checkpoint.localState && describeCarried(checkpoint.localState);
  const stays = checkpoint.localState && [describeStays(checkpoint.localState), describeLeft(checkpoint.localState)].filter(Boolean).map((line) => `; ${line}`).join('');
  return `${checkpoint.at}, ${formatMegabytes(checkpoint.bytes)}${frozen}${kind}${carried ? `; node-local files carried: ${carried}` : ''}${stays ?? ''}${describeKept(checkpoint.kept)}`;
}

/** What keeping the open files' content cost the checkpoint, and which files it could not keep. */
function describeKept(kept: KeptFigures | undefined): string {
  if (!kept) return '';
  const over = kept.over.length > 0 ? `; only a checksum of ${kept.over.join(', ')} (over ${formatMegabytes(kept.max)})` : '';
  const unreadable = kept.unreadable.length > 0 ? `; not kept, unreadable to you: ${kept.unreadable.join(', ')}` : '';
  return `; content of ${kept.files} open file(s) kept: ${formatMegabytes(kept.bytes)} written, ${Math.round(kept.ms)} ms of the frozen time${over}${unreadable}`;
}

function describeJob(job: JobRecord): string {
  const ended = job.outcome === undefined ? 'no end recorded (running, or killed)' : `${job.outcome}, exit ${job.exitCode}`;
  const pending = job.reasonPending
    ? ` (from the clock: the scheduler had not answered when the job exited${job.reasonPending.schedulerJobId === undefined ? '' : '; the next job asks it'})`
    : '';
  const plan = job.finalPlan
    ? `; final checkpoint planned at ${job.finalPlan.at} (${formatMegabytes(job.finalPlan.bytes)} at ${formatMegabytes(job.finalPlan.bytesPerSec)}/s ` +
      `${SOURCE_WORDS[job.finalPlan.source]}, dump estimated ${Math.round(job.finalPlan.estimateMs / 1000)} s)`
    : '';
  return `job ${job.jobId} (${job.mode}): ${ended}${job.reason ? `; stopped by: ${job.reason}${pending}` : ''}${plan}`;
}

export function formatStatuses(workdir: string, runs: RunStatus[]): string {
  if (runs.length === 0) return `no ckpt-run run in ${workdir} (no ${RUNS_FOLDER}/ folder with runs)\n`;
  const blocks = runs.map((run) => {
    const lines = [`${run.runId}: ${describeStatus(run)}`];
    if (run.problem) lines.push(`  ${run.problem}`);
    if (run.command) lines.push(`  command:    ${run.command.join(' ')}`);
    if (run.restarts !== undefined) lines.push(`  restarts:   ${run.restarts}`);
    for (const job of run.jobs ?? []) lines.push(`  ${job === run.lastJob ? 'last job: ' : 'job:      '}  ${describeJob(job)}`);
    if (run.checkpoint) lines.push(`  checkpoint: ${describeCheckpoint(run.checkpoint)}`);
    if (run.lazyRestore) lines.push(`  restore:    lazy, all ${formatMegabytes(run.lazyRestore.bytes)} in after ${(run.lazyRestore.ms / 1000).toFixed(1)} s`);
    lines.push(`  disk:       ${formatMegabytes(run.disk.total)} (checkpoint images ${formatMegabytes(run.disk.images)})`);
    return lines.join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}

/** The [dir] argument of status and clean: a working directory, the current one by default. */
export function workdirArgument(dir: string | undefined): string {
  const workdir = resolve(dir ?? process.cwd());
  if (!existsSync(workdir)) throw new CliError(`no such directory: ${workdir}`, ExitCode.Usage);
  return workdir;
}

export function statusCommand(): Command {
  return new Command('status')
    .description("show each run of a working directory: status, restarts, last job, last checkpoint, disk use")
    .argument('[dir]', 'the working directory (default: the current one)')
    .option('--json', 'print the runs as JSON')
    .action((dir: string | undefined, options: { json?: boolean }) => {
      const workdir = workdirArgument(dir);
      const runs = runStatuses(workdir);
      process.stdout.write(options.json ? `${JSON.stringify(runs, null, 2)}\n` : formatStatuses(workdir, runs));
    });
}
