/**
 * The local dry run: plays OAR and the node daemon around the real launcher. Each "job" is a
 * real `ckpt-run` process (the same code path as on the cluster) with a synthetic job id and a
 * private spool dir; the checkpoint signal comes on a schedule (or by hand); exit 99 starts the
 * next job with a new id, as OAR's resubmission does; with a walltime, a job still running at
 * its walltime is killed and not resubmitted, as OAR does.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DaemonEvent } from '../daemon/daemon.js';
import { EXIT_CODE_HELP, ExitCode } from '../base/exit-codes.js';
import { releaseSignal } from '../proc/early-signals.js';
import { runDirFor, runDirPaths } from '../protocol/run-dir.js';
import { ProcessHandle } from '../proc/processes.js';
import { loadRunState } from '../state/run-state.js';
import { signalDelaySec, type SignalSchedule } from './schedule.js';
import { StatusLine } from './status-line.js';
import type { CycleRecord, SimulationSummary } from './summary.js';
import { KILLED_AT_WALLTIME, verdict, type DaemonFailure } from './verdict.js';
import { killAtWalltime } from './walltime-kill.js';

export interface SimulationOptions {
  argv: string[];
  workdir: string;
  schedule: SignalSchedule;
  maxCycles: number;
  engine: string;
  /** Starts the embedded daemon on the spool dir; resolves to its stop function. */
  startDaemon: (spoolDir: string, onEvent: (event: DaemonEvent) => void) => Promise<() => Promise<void>>;
  /** Extra ckpt-run options (timeouts, logging). */
  launcherArgs: string[];
}

const CKPT_RUN = fileURLToPath(new URL('../../bin/ckpt-run', import.meta.url));
export const SIMULATION_RUN_ID = 'simulate';

/** What ended a job, from the run's own record (an exit code alone is ambiguous). */
function endedBy(workdir: string, exitCode: number): { text: string; finished: boolean } {
  let outcome: string | undefined;
  try {
    const state = loadRunState(runDirPaths(runDirFor(workdir, SIMULATION_RUN_ID)).state);
    outcome = state?.history[state.history.length - 1]?.outcome;
  } catch {
    outcome = undefined;
  }
  if (outcome === 'finished') return { text: `program exited (code ${exitCode})`, finished: true };
  if (outcome === 'checkpointed' && exitCode === ExitCode.Resubmit) return { text: 'checkpoint (exit 99)', finished: false };
  const meaning = EXIT_CODE_HELP.find(([code]) => code === String(exitCode))?.[1];
  return { text: `ckpt-run failed (exit ${exitCode}${meaning ? `: ${meaning}` : ''})`, finished: false };
}

export async function simulate(options: SimulationOptions): Promise<SimulationSummary> {
  const spoolDir = mkdtempSync(join(tmpdir(), 'ckpt-run-simulate-'));
  // A dry run always starts from the beginning: an earlier simulation's checkpoint is dropped.
  rmSync(runDirFor(options.workdir, SIMULATION_RUN_ID), { recursive: true, force: true });
  const events: DaemonEvent[] = [];
  const failures: DaemonFailure[] = [];
  /** Each job's restored program, taken as the daemon restores it (a later PID could be another process). */
  const restoredPrograms = new Map<string, ProcessHandle>();
  const stopDaemon = await options.startDaemon(spoolDir, (event) => {
    events.push(event);
    if (event.kind === 'restore' && event.ok && event.pid) restoredPrograms.set(event.jobId, new ProcessHandle(event.pid));
    if (!event.ok) failures.push({ kind: event.kind, jobId: event.jobId, reason: event.reason ?? 'no reason given' });
  });
  const status = new StatusLine(process.stderr);
  const cycles: CycleRecord[] = [];
  const started = Date.now();
  const series = Date.now().toString(36);
  let current: ReturnType<typeof spawn> | undefined;
  const manualSignal = (): void => {
    current?.kill('SIGUSR2');
  };
  process.on('SIGUSR2', manualSignal);
  releaseSignal('SIGUSR2');
  status.write(
    process.stderr,
    `ckpt-run simulate: send a checkpoint signal by hand with: kill -USR2 ${process.pid}\n`,
  );

  try {
    for (let cycle = 1; cycle <= options.maxCycles; cycle++) {
      const jobId = `sim-${series}-${cycle}`;
      const jobStart = Date.now();
      const child = spawn(
        process.execPath,
        [CKPT_RUN, '--job-id', jobId, '--run-id', SIMULATION_RUN_ID, '--spool-dir', spoolDir, '--min-runtime', '0', ...options.launcherArgs, '--', ...options.argv],
        { cwd: options.workdir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OAR_JOB_ID: '' } },
      );
      current = child;
      const ckptRun = new ProcessHandle(child.pid as number);
      child.stdout.on('data', (chunk: Buffer) => status.write(process.stdout, chunk));
      child.stderr.on('data', (chunk: Buffer) => status.write(process.stderr, chunk));
      const delay = signalDelaySec(options.schedule);
      const signalAt = delay === undefined ? undefined : jobStart + delay * 1000;
      const signalTimer = signalAt === undefined ? undefined : setTimeout(() => child.kill('SIGUSR2'), signalAt - jobStart);
      let killed = false;
      const walltimeTimer = options.schedule.kind !== 'walltime'
        ? undefined
        : setTimeout(() => (killed = killAtWalltime(ckptRun, restoredPrograms.get(jobId))), options.schedule.walltimeSec * 1000);
      const ticker = setInterval(() => {
        const next = signalAt === undefined ? 'by hand' : `in ${Math.max(0, Math.ceil((signalAt - Date.now()) / 1000))} s`;
        status.update(`[cycle ${cycle} · ${Math.round((Date.now() - started) / 1000)} s elapsed · next checkpoint ${next}]`);
      }, 1000);
      const exitCode: number = await new Promise((resolve) => {
        child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
      });
      clearTimeout(signalTimer);
      clearTimeout(walltimeTimer);
      clearInterval(ticker);
      const dump = events.find((event) => event.kind === 'dump' && event.jobId === jobId && event.ok);
      const restore = events.find((event) => event.kind === 'restore' && event.jobId === jobId);
      const ended = killed ? { text: KILLED_AT_WALLTIME, finished: false } : endedBy(options.workdir, exitCode);
      cycles.push({
        jobId,
        runSec: (Date.now() - jobStart) / 1000,
        dumpMs: dump?.ms,
        imageBytes: dump?.imageBytes,
        restoreMs: restore?.ok ? restore.ms : undefined,
        allInMs: restore?.ok ? restore.allInMs : undefined,
        exitCode,
        endedBy: ended.text,
        finished: ended.finished,
      });
      if (exitCode !== ExitCode.Resubmit) break;
    }
  } finally {
    process.removeListener('SIGUSR2', manualSignal);
    status.close();
    await stopDaemon();
    rmSync(spoolDir, { recursive: true, force: true });
  }
  return verdict({ engine: options.engine, command: options.argv, schedule: options.schedule, maxCycles: options.maxCycles, cycles, failures });
}
