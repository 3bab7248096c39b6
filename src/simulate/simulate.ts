/**
 * The local dry run: plays OAR and the node daemon around the real launcher. Each "job" is a
 * real `ckpt-run` process (the same code path as on the cluster) with a synthetic job id and a
 * private spool dir; the checkpoint signal comes on a schedule (or by hand); exit 99 starts the
 * next job with a new id, as OAR's resubmission does; with a walltime, a job still running at
 * its walltime is killed and not resubmitted, as OAR does.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DaemonEvent } from '../daemon/daemon.js';
import { EXIT_CODE_HELP, ExitCode } from '../base/exit-codes.js';
import { releaseSignal } from '../proc/early-signals.js';
import { JOB_OUTPUT_ENV, ownOutputFiles } from '../proc/job-output.js';
import { SIMULATED_STOP_ENV } from '../scheduler/simulated.js';
import { runDirFor, runDirPaths } from '../protocol/run-dir.js';
import { catchesSignal, childrenOf, killAll, ProcessHandle, treeOf } from '../proc/processes.js';
import { loadRunState } from '../state/run-state.js';
import { signalDelaySec, type SignalSchedule } from './schedule.js';
import { StatusLine } from './status-line.js';
import type { CycleRecord, SimulationSummary } from './summary.js';
import { CRASHED, KILLED_AT_WALLTIME, PREEMPTED_KILLED, verdict, type DaemonFailure } from './verdict.js';
import { killWholeJob } from './job-kill.js';

export interface SimulationOptions {
  argv: string[];
  workdir: string;
  schedule: SignalSchedule;
  maxCycles: number;
  engine: string;
  /** Starts the embedded daemon on the spool dir; resolves to its stop function. Absent where the jobs' engine needs no daemon (a resume is a new start). */
  startDaemon?: (spoolDir: string, onEvent: (event: DaemonEvent) => void) => Promise<() => Promise<void>>;
  /** Extra ckpt-run options (timeouts, logging, --interval). */
  launcherArgs: string[];
  /** Seconds into the dry run at which the running job is killed whole with SIGKILL, once (a node crash). */
  crashAtSec?: number;
  /**
   * Seconds into the dry run at which the running job is preempted, once: the checkpoint signal,
   * then the kill PREEMPTGRACESEC later if it is still there (OAR's besteffort jobs); resubmitted either way.
   */
  preemptAtSec?: number;
  preemptGraceSec?: number;
}

/** How often a signal due to a job that cannot take it yet looks again. */
const SIGNAL_READY_POLL_MS = 10;

/**
 * Sends the checkpoint signal to the job CHILD once it can take it: a node process catches
 * nothing before its first line runs (on a loaded node, half a second and more after the
 * spawn), and SIGUSR2's default action would kill it. A scheduler signals jobs that have run
 * for minutes; the dry run's first signal may come sooner than the job's start. Bounded by the
 * job's life: nothing is sent to a job that ended.
 */
function signalWhenHeld(child: ReturnType<typeof spawn>): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  if (catchesSignal(child.pid, 'SIGUSR2')) child.kill('SIGUSR2');
  else setTimeout(() => signalWhenHeld(child), SIGNAL_READY_POLL_MS);
}

/**
 * Calls ACT once the job CHILD has started its program (ckpt-run's child): --every counts the
 * program's own time, and on a loaded node ckpt-run itself may take a second to start, which
 * left a program that saves itself (--engine app) no time to run before the signal. Bounded by
 * the job's life.
 */
function whenProgramStarts(child: ReturnType<typeof spawn>, act: () => void): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  if (childrenOf(child.pid).length > 0) act();
  else setTimeout(() => whenProgramStarts(child, act), SIGNAL_READY_POLL_MS);
}

/** A timer for what happens once, AT ms since the dry run started, if it falls in this job. */
function once(at: number | undefined, done: boolean, act: () => void): NodeJS.Timeout | undefined {
  return at === undefined || done ? undefined : setTimeout(act, Math.max(0, at - Date.now()));
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

/** ckpt-run's warning at a resume for files it cannot roll back (launcher/file-rollback.ts). */
const NOT_ROLLED_BACK = /so not rolled back: (.*?)\. The resumed program/;

/** What the daemon did for the jobs so far, gathered from its events. */
class DaemonWatch {
  readonly events: DaemonEvent[] = [];
  readonly failures: DaemonFailure[] = [];
  /** Each job's restored program, taken as the daemon restores it (a later PID could be another process). */
  readonly restoredPrograms = new Map<string, ProcessHandle>();
  /** Jobs killed whole: a restore the daemon finishes for one afterwards is killed too, as with the job's cgroup. */
  readonly deadJobs = new Set<string>();
  /** What to do once a job's program is restored (keyed by job id): time its --every signal. */
  readonly onRestored = new Map<string, () => void>();

  take(event: DaemonEvent): void {
    this.events.push(event);
    if (event.kind === 'restore' && event.ok) this.onRestored.get(event.jobId)?.();
    if (event.kind === 'restore' && event.ok && event.pid) this.restoredPrograms.set(event.jobId, new ProcessHandle(event.pid));
    if (event.kind === 'restore' && event.ok && event.pid && this.deadJobs.has(event.jobId)) killAll(treeOf(event.pid), 'SIGKILL');
    if (!event.ok) this.failures.push({ kind: event.kind, jobId: event.jobId, reason: event.reason ?? 'no reason given' });
  }

  /** The cycle record of job JOBID, once it ended with EXITCODE, as ENDED says. */
  cycleOf(jobId: string, jobStart: number, exitCode: number, ended: { text: string; finished: boolean }, notRolledBack: string | undefined): CycleRecord {
    const dumps = this.events.filter((event) => event.kind === 'dump' && event.jobId === jobId && event.ok);
    const dump = dumps.at(-1);
    const restore = this.events.find((event) => event.kind === 'restore' && event.jobId === jobId);
    return {
      jobId,
      runSec: (Date.now() - jobStart) / 1000,
      dumps: dumps.length,
      dumpMs: dump?.ms,
      imageBytes: dump?.imageBytes,
      restoreMs: restore?.ok ? restore.ms : undefined,
      allInMs: restore?.ok ? restore.allInMs : undefined,
      exitCode,
      endedBy: ended.text,
      finished: ended.finished,
      ...(notRolledBack ? { notRolledBack } : {}),
    };
  }
}

/** The dry run's jobs, one after another, with the scheduler's signals, walltime, crash and preemption around each. */
class DryRun {
  readonly status = new StatusLine(process.stderr);
  private readonly started = Date.now();
  private readonly crashAt: number | undefined;
  private readonly preemptAt: number | undefined;
  private crashed = false;
  private preempted = false;
  private readonly series = Date.now().toString(36);
  /** The job that runs now: a checkpoint signal by hand goes to it. */
  current: ReturnType<typeof spawn> | undefined;
  /** Why each checkpoint signal comes, for the job to log (scheduler/simulated.ts). */
  private readonly stopFile: string;
  private readonly ownOutput = ownOutputFiles().map((file) => file.path).join('\n');

  constructor(
    private readonly options: SimulationOptions,
    private readonly spoolDir: string,
    readonly daemon: DaemonWatch,
  ) {
    this.crashAt = options.crashAtSec === undefined ? undefined : this.started + options.crashAtSec * 1000;
    this.preemptAt = options.preemptAtSec === undefined ? undefined : this.started + options.preemptAtSec * 1000;
    this.stopFile = join(spoolDir, 'simulated-stop');
  }

  signalJob(child: ReturnType<typeof spawn> | undefined, why: 'walltime' | 'preemption' | 'manual'): void {
    writeFileSync(this.stopFile, `${why}\n`);
    if (child) signalWhenHeld(child);
  }

  /** Runs the jobs until one does not exit 99 (or is not killed to be submitted again), at most maxCycles. */
  async runJobs(): Promise<CycleRecord[]> {
    const cycles: CycleRecord[] = [];
    for (let cycle = 1; cycle <= this.options.maxCycles; cycle++) {
      const { record, again } = await this.runJob(cycle);
      cycles.push(record);
      if (!again) break;
    }
    return cycles;
  }

  private startJob(jobId: string): { child: ReturnType<typeof spawn>; notRolledBack: () => string | undefined } {
    const { options, spoolDir, status } = this;
    const child = spawn(
      process.execPath,
      [CKPT_RUN, '--job-id', jobId, '--run-id', SIMULATION_RUN_ID, '--spool-dir', spoolDir, '--min-runtime', '0', ...options.launcherArgs, '--', ...options.argv],
      // The jobs write into pipes to this process: its own output files are theirs (a resume leaves them out of what changed).
      { cwd: options.workdir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OAR_JOB_ID: '', [JOB_OUTPUT_ENV]: this.ownOutput, [SIMULATED_STOP_ENV]: this.stopFile } },
    );
    this.current = child;
    child.stdout.on('data', (chunk: Buffer) => status.write(process.stdout, chunk));
    let notRolledBack: string | undefined;
    let recent = ''; // the warning may come in two chunks
    child.stderr.on('data', (chunk: Buffer) => {
      recent = (recent + chunk.toString()).slice(-16_384);
      notRolledBack ??= NOT_ROLLED_BACK.exec(recent)?.[1];
      status.write(process.stderr, chunk);
    });
    return { child, notRolledBack: () => notRolledBack };
  }

  /** One job, from its start to its end: its record, and whether the next job follows (as a scheduler would submit it). */
  private async runJob(cycle: number): Promise<{ record: CycleRecord; again: boolean }> {
    const { options, daemon, status } = this;
    const jobId = `sim-${this.series}-${cycle}`;
    const jobStart = Date.now();
    const resumes = existsSync(runDirPaths(runDirFor(options.workdir, SIMULATION_RUN_ID)).checkpointOk);
    const { child, notRolledBack } = this.startJob(jobId);
    const ckptRun = new ProcessHandle(child.pid as number);
    const delay = signalDelaySec(options.schedule);
    let signalAt: number | undefined;
    let signalTimer: NodeJS.Timeout | undefined;
    const armSignal = (): void => {
      if (delay === undefined) return;
      signalAt = Date.now() + delay * 1000;
      signalTimer = setTimeout(() => this.signalJob(child, 'walltime'), delay * 1000);
    };
    // --every counts the program's own time in each job: from its start, or a resumed job's
    // from its restore, so that a slow start or restore (a loaded node, PIDs still held by the
    // dumped tree) does not eat the cycle and leave the run without progress. A scheduler's
    // walltime counts from the job's start.
    if (options.schedule.kind !== 'every') armSignal();
    else if (resumes && options.startDaemon) daemon.onRestored.set(jobId, armSignal);
    else whenProgramStarts(child, armSignal);
    const kills = this.killTimers(jobId, child, ckptRun);
    const ticker = setInterval(() => {
      const unsignalled = options.schedule.kind === 'walltime' ? 'self-timed by the job' : 'by hand';
      const next = signalAt === undefined ? unsignalled : `in ${Math.max(0, Math.ceil((signalAt - Date.now()) / 1000))} s`;
      status.update(`[cycle ${cycle} · ${Math.round((Date.now() - this.started) / 1000)} s elapsed · next checkpoint ${next}]`);
    }, 1000);
    const exitCode: number = await new Promise((resolve) => {
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
    daemon.onRestored.delete(jobId); // a restore finished after its job is no cycle of this one's
    clearTimeout(signalTimer);
    kills.clear();
    clearInterval(ticker);
    const killed = kills.killed();
    const ended = killed ? { text: killed, finished: false } : endedBy(options.workdir, exitCode);
    // A crashed or preempted job is submitted again (by the user, or by OAR for a besteffort one).
    const again = exitCode === ExitCode.Resubmit || killed === CRASHED || killed === PREEMPTED_KILLED;
    return { record: daemon.cycleOf(jobId, jobStart, exitCode, ended, notRolledBack()), again };
  }

  /** The walltime's kill, the crash and the preemption that fall in job JOBID; killed(): why it was killed, if it was. */
  private killTimers(jobId: string, child: ReturnType<typeof spawn>, ckptRun: ProcessHandle): { clear: () => void; killed: () => string | undefined } {
    const { options, daemon } = this;
    let killed: string | undefined;
    const killJob = (why: string): void => {
      daemon.deadJobs.add(jobId);
      if (killWholeJob(ckptRun, daemon.restoredPrograms.get(jobId))) killed = why;
    };
    const walltimeTimer = options.schedule.kind !== 'walltime'
      ? undefined
      : setTimeout(() => killJob(KILLED_AT_WALLTIME), options.schedule.walltimeSec * 1000);
    const crashTimer = once(this.crashAt, this.crashed, () => {
      this.crashed = true;
      killJob(CRASHED);
    });
    let graceTimer: NodeJS.Timeout | undefined;
    const preemptTimer = once(this.preemptAt, this.preempted, () => {
      this.preempted = true;
      this.status.write(process.stderr, `ckpt-run simulate: job ${jobId} preempted: checkpoint signal now, killed in ${options.preemptGraceSec ?? 0} s if still there\n`);
      this.signalJob(child, 'preemption');
      graceTimer = setTimeout(() => killJob(PREEMPTED_KILLED), (options.preemptGraceSec ?? 0) * 1000);
    });
    return { clear: () => [walltimeTimer, crashTimer, preemptTimer, graceTimer].forEach((timer) => clearTimeout(timer)), killed: () => killed };
  }
}

export async function simulate(options: SimulationOptions): Promise<SimulationSummary> {
  const spoolDir = mkdtempSync(join(tmpdir(), 'ckpt-run-simulate-'));
  // A dry run always starts from the beginning: an earlier simulation's checkpoint is dropped.
  rmSync(runDirFor(options.workdir, SIMULATION_RUN_ID), { recursive: true, force: true });
  const daemon = new DaemonWatch();
  const stopDaemon = options.startDaemon ? await options.startDaemon(spoolDir, (event) => daemon.take(event)) : async () => undefined;
  // Its clock starts once the daemon serves: --crash-at and --preempt-at count from there.
  const run = new DryRun(options, spoolDir, daemon);
  const manualSignal = (): void => run.signalJob(run.current, 'manual');
  process.on('SIGUSR2', manualSignal);
  releaseSignal('SIGUSR2');
  run.status.write(process.stderr, `ckpt-run simulate: send a checkpoint signal by hand with: kill -USR2 ${process.pid}\n`);
  let cycles: CycleRecord[];
  try {
    cycles = await run.runJobs();
  } finally {
    process.removeListener('SIGUSR2', manualSignal);
    run.status.close();
    await stopDaemon();
    rmSync(spoolDir, { recursive: true, force: true });
  }
  return verdict({ engine: options.engine, command: options.argv, schedule: options.schedule, maxCycles: options.maxCycles, cycles, failures: run.daemon.failures });
}
