/**
 * The launcher's edge: turns real signals, file events, process exits and timers into events
 * for the state machine (machine.ts) and carries out its actions. Waits are event-driven
 * (inotify on the run directory) with a slow safety poll, so a missed event only costs time.
 */
import { existsSync, readFileSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import { CliError, ExitCode } from '../cli/exit-codes.js';
import type { Logger } from '../log/logger.js';
import { megabytes } from '../log/units.js';
import { writeFileAtomic } from '../protocol/atomic-write.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { HEARTBEAT_FILE, HEARTBEAT_STALE_MS, parseDaemonReport, type DaemonReport } from '../protocol/daemon-report.js';
import { formatRequest, requestPath, type SpoolRequest } from '../protocol/spool-request.js';
import { OutputRelay } from '../proc/output-relay.js';
import { childrenOf, processState, ProcessHandle } from '../proc/process-liveness.js';
import { spawnProgramTree } from '../proc/program-tree.js';
import { saveRunState } from '../state/run-state.js';
import { join } from 'node:path';
import { initialState, step, type MachineAction, type MachineEvent, type MachineState, type TimerName } from './machine.js';
import { releaseSignal } from './early-signals.js';
import type { PreparedRun } from './preflight.js';

export interface LaunchSettings {
  argv: string[];
  workdir: string;
  spoolDir: string;
  jobId: string;
  signal: NodeJS.Signals;
  resumeTimeoutMs: number;
  dumpTimeoutMs: number;
  minRuntimeMs: number;
  maxRestarts: number;
  /** When the scheduler kills the job (epoch ms), where it says. */
  walltimeEndsAt?: number;
  pidNamespace: boolean;
  /** Fail fast when no daemon heartbeat answers a request (off for daemons without one). */
  daemonCheck: boolean;
  /** How long a request may wait unanswered, without a live heartbeat, before we say so. */
  daemonGraceMs: number;
  /** The safety poll's period while a request is out: catches what inotify missed (e.g. NFS). */
  pollMs: number;
  /** The same while the program just runs: its exit, output and status all have push events. */
  idlePollMs: number;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

const TERMINATION_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** Reads a small file the daemon or the shim writes; undefined while it is absent. */
function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string | undefined {
  return readIfPresent(`/proc/${pid}/cmdline`);
}

export function runLauncher(settings: LaunchSettings, run: PreparedRun): Promise<number> {
  const { logger, spoolDir, jobId } = settings;
  const { paths, state: runState } = run;
  const startedAt = Date.now();

  let machine: MachineState = initialState(
    {
      dumpTimeoutMs: settings.dumpTimeoutMs,
      resumeTimeoutMs: settings.resumeTimeoutMs,
      minRuntimeMs: settings.minRuntimeMs,
      restarts: runState.restarts,
      maxRestarts: settings.maxRestarts,
      walltimeEndsAt: settings.walltimeEndsAt,
    },
    startedAt,
  );
  const timers = new Map<TimerName, NodeJS.Timeout>();
  const relays = [
    new OutputRelay(paths.stdoutLog, 1, runState.relayed.stdout),
    new OutputRelay(paths.stderrLog, 2, runState.relayed.stderr),
  ];
  let program: ProcessHandle | undefined;
  let checkpointOkBefore: string | undefined;
  let daemonCheckTimer: NodeJS.Timeout | undefined;
  let imagesWatcher: FSWatcher | undefined;
  let relayScheduled = false;
  let ended = false;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  const checkpointAtStart = checkpointIdentity(paths.checkpointOk);
  runState.status = 'running';
  runState.history.push({ jobId, startedAt: new Date(startedAt).toISOString(), mode: run.mode });
  saveRunState(paths.state, runState);

  const onCheckpointSignal = (): void => dispatch({ type: 'checkpointSignal' });
  const onTerminate = (signal: NodeJS.Signals): void => dispatch({ type: 'terminate', signal });
  process.on(settings.signal, onCheckpointSignal);
  for (const signal of TERMINATION_SIGNALS) process.on(signal, onTerminate);
  const earlySignals = releaseSignal(settings.signal);

  /**
   * Events come from signal handlers, watchers and timers, outside any caller that could catch:
   * an error here ends the job with one line and its code, never a stack trace or a wrong 99.
   */
  function dispatch(event: MachineEvent): void {
    try {
      const next = step(machine, event, Date.now());
      machine = next.state;
      for (const action of next.actions) perform(action);
      armPoll();
    } catch (error) {
      if (ended) return;
      machine = { ...machine, phase: 'exiting' };
      const code = error instanceof CliError ? error.exitCode : ExitCode.Internal;
      logger.log('error', error instanceof CliError ? error.message : `internal error: ${(error as Error).message}`);
      end(code, 'failed');
    }
  }

  function scheduleRelay(): void {
    if (relayScheduled) return;
    relayScheduled = true;
    // Coalesce the bursts of inotify events a chatty program causes into one read.
    setTimeout(() => {
      relayScheduled = false;
      for (const relay of relays) relay.pump();
    }, 20);
  }

  /** The program's exit status, once the shim has published it whole. */
  function readExitStatus(): number | undefined {
    const text = readIfPresent(paths.exitStatus);
    return text !== undefined && /^\d+\n$/.test(text) ? Number(text) : undefined;
  }

  /** The daemon's report in PATH (dump_failed, restore_failed), once written whole. */
  function readReport(path: string): DaemonReport | undefined {
    const text = readIfPresent(path);
    return text === undefined ? undefined : parseDaemonReport(text);
  }

  /** Looks at every file that can move the run forward; the watchers and the poll call it. */
  function inspect(): void {
    if (machine.phase === 'exiting') return;
    const exitCode = readExitStatus();
    if (exitCode !== undefined) {
      dispatch({ type: 'programExited', exitCode });
      return;
    }
    if (machine.phase === 'resuming') {
      const parsed = readReport(paths.restoreFailed);
      if (parsed) {
        dispatch({ type: 'restoreFailed', reason: parsed.reason, retryable: parsed.retryable });
        return;
      }
      const pidText = readIfPresent(paths.pidfile);
      // The pidfile may exist before it is complete or readable (criu writes it as root).
      if (pidText !== undefined && /^\d+\n?$/.test(pidText)) dispatch({ type: 'restored', pid: Number(pidText) });
      return;
    }
    if (machine.requestOutstanding) {
      const parsed = readReport(paths.dumpFailed);
      if (parsed) dispatch({ type: 'dumpFailed', reason: parsed.reason, program: parsed.program });
      const identity = checkpointIdentity(paths.checkpointOk);
      if (identity !== undefined && identity !== checkpointOkBefore) dispatch({ type: 'checkpointOk' });
    }
    if (program && !program.isAlive()) {
      // The shim may have written the status just before going away.
      const status = readExitStatus();
      // A lazy restore whose memory transfer failed: the daemon killed the restored program.
      const lazyFailure = status === undefined && run.mode === 'resume' ? readReport(paths.restoreFailed) : undefined;
      if (lazyFailure) dispatch({ type: 'restoreFailed', reason: lazyFailure.reason, retryable: lazyFailure.retryable });
      else dispatch(status === undefined ? { type: 'programGone' } : { type: 'programExited', exitCode: status });
    }
  }

  /** A lazy restore's memory is all in: said once, with the daemon's figures. */
  let pagesInSaid = false;
  function reportPagesIn(): void {
    const text = readIfPresent(paths.pagesIn);
    if (pagesInSaid || run.mode !== 'resume' || text === undefined || !text.endsWith('\n')) return;
    pagesInSaid = true;
    try {
      const { ms, bytes } = JSON.parse(text) as { ms: number; bytes: number };
      logger.log('info', `all ${megabytes(bytes)} of the program's memory in after ${(ms / 1000).toFixed(1)} s (lazy restore)`);
    } catch {
      // not the daemon's file: nothing to say
    }
  }

  const runDirWatcher = watch(paths.dir, (_event, name) => {
    if (name === 'stdout.log' || name === 'stderr.log') scheduleRelay();
    else if (name === 'pages_in') reportPagesIn();
    else if (name === 'checkpoint') watchImages();
    else inspect();
  });
  let poll: NodeJS.Timeout | undefined;
  let pollEvery = 0;
  /** A fast poll only while waiting on the daemon: idle CPU stays near zero for long jobs. */
  function armPoll(): void {
    const waiting = machine.requestOutstanding || machine.phase === 'resuming' || machine.phase === 'checkpointing';
    const every = waiting ? settings.pollMs : settings.idlePollMs;
    if (every === pollEvery || ended) return;
    pollEvery = every;
    clearInterval(poll);
    poll = setInterval(() => {
      for (const relay of relays) relay.pump();
      inspect();
    }, every);
  }

  /** The images folder is replaced by every dump: (re)attach a watcher for the pidfile. */
  function watchImages(): void {
    imagesWatcher?.close();
    imagesWatcher = undefined;
    if (machine.phase !== 'resuming') return;
    try {
      imagesWatcher = watch(paths.images, () => inspect());
    } catch {
      // no images folder yet: the run dir watcher calls again when it appears
    }
    inspect();
  }

  function sendRequest(request: SpoolRequest): void {
    const path = requestPath(spoolDir, request.kind, jobId);
    try {
      writeFileAtomic(path, formatRequest(request), { durable: false });
    } catch (error) {
      throw new CliError(`cannot write the request ${path}: ${(error as Error).message}`, ExitCode.SpoolDir);
    }
    if (settings.daemonCheck) {
      clearTimeout(daemonCheckTimer);
      daemonCheckTimer = setTimeout(() => checkDaemon(path), settings.daemonGraceMs);
    }
  }

  /**
   * Whether a daemon serves our request: one that leaves it unread past the grace period with
   * no live heartbeat is absent; one whose heartbeat stops while it serves the request died
   * mid-way (a daemon that never had a heartbeat is trusted once it took the request). While
   * the heartbeat is fresh the daemon is only busy: look again, as it may die meanwhile.
   */
  function checkDaemon(path: string): void {
    if (machine.phase !== 'resuming' && machine.phase !== 'checkpointing') return;
    const heartbeat = join(spoolDir, HEARTBEAT_FILE);
    let age: number | undefined;
    try {
      age = Date.now() - statSync(heartbeat).mtimeMs;
    } catch {
      age = undefined;
    }
    const unread = existsSync(path);
    if ((age !== undefined && age < HEARTBEAT_STALE_MS) || (!unread && age === undefined)) {
      daemonCheckTimer = setTimeout(() => checkDaemon(path), settings.daemonGraceMs);
      return;
    }
    const why = age === undefined ? `no heartbeat file ${heartbeat}` : `its heartbeat ${heartbeat} is ${Math.round(age / 1000)} s old`;
    if (machine.phase === 'resuming') rmSync(path, { force: true });
    dispatch({
      type: 'daemonSilent',
      detail: unread
        ? `no checkpoint daemon answered: ${path} is still unread after ${settings.daemonGraceMs / 1000} s and ${why} ` +
          '(is ckpt-daemon running on this node? for a daemon without heartbeat use --no-daemon-check)'
        : `the checkpoint daemon stopped while serving ${path}: ${why}`,
    });
  }

  /**
   * Passes SIGNAL to the program, the shim's child. Right after the start the shim may not have
   * started it yet, or only forked it: that child still runs the shim's command line and
   * handler (which would swallow the signal) until it execs the program. Then it tries again,
   * bounded, rather than passing the signal to nobody.
   */
  function forwardSignal(signal: NodeJS.Signals, deadline: number): void {
    const shim = machine.pid as number;
    const children = childrenOf(shim);
    const notYet = children.length === 0 || children.some((pid) => commandLine(pid) === commandLine(shim));
    if (notYet && !ended && program?.isAlive() && Date.now() < deadline) {
      setTimeout(() => forwardSignal(signal, deadline), 5);
      return;
    }
    logger.log('debug', `passing ${signal} to PID ${children.join(', ') || '(none)'} under ${shim}`);
    for (const pid of children) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  function perform(action: MachineAction): void {
    switch (action.type) {
      case 'log':
        logger.log(action.level, action.message);
        return;
      case 'spawn':
        spawnProgramTree({
          argv: settings.argv,
          paths,
          cwd: settings.workdir,
          env: settings.env,
          pidNamespace: settings.pidNamespace,
        }).then(
          (tree) => {
            program = new ProcessHandle(tree.rootPid);
            // Our own child: its exit is the fastest news that the tree is gone.
            tree.child.once('exit', () => inspect());
            dispatch({ type: 'spawned', pid: tree.rootPid });
          },
          (error: Error) => {
            logger.log('error', `cannot start the program: ${error.message}`);
            end(ExitCode.NotExecutable, 'failed');
          },
        );
        return;
      case 'requestCheckpoint':
        checkpointOkBefore = checkpointIdentity(paths.checkpointOk);
        rmSync(paths.dumpFailed, { force: true });
        writeFileAtomic(paths.answerBy, `${action.answerBy}\n`);
        sendRequest({ kind: 'checkpoint', jobId, pid: action.pid, dir: paths.dir });
        return;
      case 'requestResume':
        rmSync(paths.pidfile, { force: true });
        rmSync(paths.restoreFailed, { force: true });
        rmSync(paths.pagesIn, { force: true });
        writeFileAtomic(paths.answerBy, `${action.answerBy}\n`);
        sendRequest({ kind: 'resume', jobId, dir: paths.dir });
        watchImages();
        return;
      case 'watchProgram':
        program = new ProcessHandle(action.pid);
        inspect();
        return;
      case 'setTimer':
        clearTimeout(timers.get(action.name));
        timers.set(
          action.name,
          setTimeout(() => {
            const programState = action.name === 'dump' && program ? processState(program.pid) : undefined;
            dispatch({ type: 'timer', name: action.name, programState });
          }, action.ms),
        );
        return;
      case 'clearTimer':
        clearTimeout(timers.get(action.name));
        timers.delete(action.name);
        return;
      case 'forwardSignal':
        forwardSignal(action.signal, Date.now() + 2000);
        return;
      case 'exit':
        if (action.outcome === 'checkpointed') runState.restarts += 1;
        if (action.exitCode !== undefined) runState.exitCode = action.exitCode;
        end(action.code, action.outcome);
        return;
    }
  }

  function end(code: number, outcome: 'checkpointed' | 'finished' | 'failed'): void {
    if (ended) return;
    ended = true;
    clearInterval(poll);
    clearTimeout(daemonCheckTimer);
    for (const timer of timers.values()) clearTimeout(timer);
    runDirWatcher.close();
    imagesWatcher?.close();
    process.removeListener(settings.signal, onCheckpointSignal);
    for (const signal of TERMINATION_SIGNALS) process.removeListener(signal, onTerminate);
    // Whatever fails while tidying up, the exit code decided above is the one the job returns.
    try {
      for (const relay of relays) relay.pump();
      // A request still unread when the job ends would be served for nobody: a restored tree
      // that no job watches, or the dump of a program that already ended.
      rmSync(requestPath(spoolDir, 'resume', jobId), { force: true });
      rmSync(requestPath(spoolDir, 'checkpoint', jobId), { force: true });
      runState.relayed = { stdout: relays[0].offset, stderr: relays[1].offset };
      // A dump completed during this job and ended the program: the output files end where the
      // checkpoint's program left them (a job that resumes it after a kill rolls back to there).
      const checkpoint = checkpointIdentity(paths.checkpointOk);
      if (checkpoint !== undefined && checkpoint !== checkpointAtStart) runState.checkpointOutput = { checkpoint, ...runState.relayed };
      // A failure keeps the status that decides the next job: a run with a checkpoint resumes.
      if (outcome === 'checkpointed') runState.status = 'checkpointed';
      if (outcome === 'finished') runState.status = 'finished';
      const record = runState.history[runState.history.length - 1];
      record.endedAt = new Date().toISOString();
      record.outcome = outcome;
      record.exitCode = code;
      // A finished run's images must never be resumed, even if the state cannot be saved.
      if (outcome === 'finished') rmSync(paths.checkpointOk, { force: true });
      // A program stopped by the signal passed on left the status of that stop, not a final one.
      if (outcome === 'failed' && machine.terminating) rmSync(paths.exitStatus, { force: true });
      saveRunState(paths.state, runState);
    } catch (error) {
      logger.log('error', `while ending the job: ${(error as Error).message} (state file ${paths.state})`);
    } finally {
      finish(code);
    }
  }

  dispatch({ type: 'start', mode: run.mode });
  if (earlySignals > 0) dispatch({ type: 'checkpointSignal' });
  return done;
}
