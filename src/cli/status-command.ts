/** `ckpt-run status`: where each run of a working directory stands, read from its run folder. */
import { Command } from 'commander';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { formatMegabytes } from '../base/sizes.js';
import { imagesBytes, runDirFor, runDirPaths, RUNS_FOLDER } from '../protocol/run-dir.js';
import { loadRunState, type JobRecord, type RunState } from '../state/run-state.js';

export interface RunStatus {
  runId: string;
  /** running (or killed while it ran), checkpointed, finished, failed; or unusable. */
  status: string;
  restarts?: number;
  exitCode?: number;
  lastJob?: JobRecord;
  /** The last complete checkpoint: when the daemon marked it, and its images' size. */
  checkpoint?: { at: string; bytes: number };
  command?: string[];
  /** Why the state file cannot be used, for an unusable run. */
  problem?: string;
}

function statusOf(workdir: string, runId: string): RunStatus {
  const paths = runDirPaths(runDirFor(workdir, runId));
  let state: RunState | undefined;
  try {
    state = loadRunState(paths.state);
  } catch (error) {
    return { runId, status: 'unusable', problem: (error as Error).message };
  }
  if (!state) return { runId, status: 'unusable', problem: `${paths.state} is missing` };
  const checkpoint = state.status !== 'finished' && existsSync(paths.checkpointOk)
    ? { at: statSync(paths.checkpointOk).mtime.toISOString(), bytes: existsSync(paths.images) ? imagesBytes(paths.images) : 0 }
    : undefined;
  return {
    runId,
    status: state.status,
    restarts: state.restarts,
    exitCode: state.exitCode,
    lastJob: state.history.at(-1),
    checkpoint,
    command: state.command,
  };
}

/** Every run in WORKDIR's run folders, by run id. */
export function runStatuses(workdir: string): RunStatus[] {
  const runs = join(workdir, RUNS_FOLDER);
  if (!existsSync(runs)) return [];
  return readdirSync(runs, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => statusOf(workdir, entry.name))
    .sort((a, b) => a.runId.localeCompare(b.runId));
}

/**
 * state.json keeps "running" after a job that ended without a checkpoint (the status decides
 * the next job); a person wants to know whether anything runs and what the next job will do.
 */
function describeStatus(run: RunStatus): string {
  const next = run.checkpoint ? 'the next job resumes the last checkpoint' : 'the next job starts it again from the beginning';
  if (run.status === 'finished') return `finished, exit code ${run.exitCode}`;
  if (run.status === 'checkpointed') return `checkpointed: ${next}`;
  if (run.status !== 'running') return run.status;
  if (run.lastJob?.outcome === undefined) return `running (or its last job was killed before it could record its end); if it is not running, ${next}`;
  return `stopped: its last job ended without a checkpoint; ${next}`;
}

function describeLastJob(job: JobRecord): string {
  const ended = job.outcome === undefined ? 'no end recorded (running, or killed)' : `${job.outcome}, exit ${job.exitCode}`;
  return `job ${job.jobId} (${job.mode}): ${ended}`;
}

export function formatStatuses(workdir: string, runs: RunStatus[]): string {
  if (runs.length === 0) return `no ckpt-run run in ${workdir} (no ${RUNS_FOLDER}/ folder with runs)\n`;
  const blocks = runs.map((run) => {
    const lines = [`${run.runId}: ${describeStatus(run)}`];
    if (run.problem) lines.push(`  ${run.problem}`);
    if (run.command) lines.push(`  command:    ${run.command.join(' ')}`);
    if (run.restarts !== undefined) lines.push(`  restarts:   ${run.restarts}`);
    if (run.lastJob) lines.push(`  last job:   ${describeLastJob(run.lastJob)}`);
    if (run.checkpoint) lines.push(`  checkpoint: ${run.checkpoint.at}, ${formatMegabytes(run.checkpoint.bytes)}`);
    return lines.join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}

export function statusCommand(): Command {
  return new Command('status')
    .description("show each run of a working directory: status, restarts, last job, last checkpoint")
    .argument('[dir]', 'the working directory (default: the current one)')
    .option('--json', 'print the runs as JSON')
    .action((dir: string | undefined, options: { json?: boolean }) => {
      const workdir = resolve(dir ?? process.cwd());
      if (!existsSync(workdir)) throw new CliError(`no such directory: ${workdir}`, ExitCode.Usage);
      const runs = runStatuses(workdir);
      process.stdout.write(options.json ? `${JSON.stringify(runs, null, 2)}\n` : formatStatuses(workdir, runs));
    });
}
