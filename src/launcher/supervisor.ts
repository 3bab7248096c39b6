/**
 * The job-side supervisor: one loop a newcomer can read top to bottom.
 *
 *   world → events:   signals.ts (checkpoint and termination signals), program-watch.ts (run
 *                     directory, program liveness, output), daemon-link.ts (daemon heartbeat) or
 *                     app-link.ts (--engine app: the program's own save, published as a checkpoint),
 *                     spawn.ts (the program's start), timers (below)
 *   events → actions: machine.ts (pure; the file and heartbeat verdicts in decisions.ts)
 *   actions → world:  perform() below, one action at a time
 *
 * Events are queued and handled one at a time: an effect that produces an event (a watcher, a
 * timer, the start of a program) posts it, and it is handled after the current one, never inside
 * it. Once the exit action is performed nothing else is: later events are dropped.
 */
import { rmSync } from 'node:fs';
import { CliError, ExitCode } from '../base/exit-codes.js';
import type { Logger } from '../log/logger.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { signalGroup } from '../proc/processes.js';
import { saveRunState } from '../state/run-state.js';
import { AppLink } from './app-link.js';
import { DaemonLink, type CheckpointLink } from './daemon-link.js';
import { endOfJobRecord, eventsFromFiles, type SavedExit } from './decisions.js';
import { EventQueue } from './event-queue.js';
import { awaitsDaemon, initialState, step, type MachineAction, type MachineEvent, type MachineState, type Outcome, type TimerName } from './machine.js';
import type { PreparedRun } from './preflight.js';
import { ProgramWatch } from './program-watch.js';
import { forwardSignal, listenToSignals } from './signals.js';
import { spawnProgram } from './spawn.js';

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
  /** --engine app: the program saves itself on SIGNAL and exits as SAVED says; no daemon. */
  app?: { signal: NodeJS.Signals; saved: SavedExit; graceMs?: number };
}

/** Runs the job to its end; resolves to ckpt-run's exit code. */
export function runLauncher(settings: LaunchSettings, run: PreparedRun): Promise<number> {
  return new Supervisor(settings, run).run();
}

class Supervisor {
  private state: MachineState;
  private readonly events = new EventQueue<MachineEvent>((event) => this.handle(event));
  private ended = false;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private readonly watch: ProgramWatch;
  private readonly link: CheckpointLink;
  private readonly checkpointAtStart: string | undefined;
  private stopSignals: () => void = () => undefined;
  private finish: (code: number) => void = () => undefined;

  constructor(
    private readonly settings: LaunchSettings,
    private readonly prepared: PreparedRun,
  ) {
    const { paths, state: runState } = prepared;
    this.state = initialState(
      {
        dumpTimeoutMs: settings.dumpTimeoutMs,
        resumeTimeoutMs: settings.resumeTimeoutMs,
        minRuntimeMs: settings.minRuntimeMs,
        restarts: runState.restarts,
        maxRestarts: settings.maxRestarts,
        walltimeEndsAt: settings.walltimeEndsAt,
        app: settings.app && { signal: settings.app.signal, graceMs: settings.app.graceMs },
      },
      Date.now(),
    );
    this.checkpointAtStart = checkpointIdentity(paths.checkpointOk);
    this.watch = new ProgramWatch(paths, runState.relayed, {
      look: () => this.look(),
      resuming: () => this.state.phase === 'resuming',
      resumedJob: prepared.mode === 'resume',
      say: (message) => settings.logger.log('info', message),
    });
    this.link = settings.app
      ? new AppLink({ paths, signal: settings.app.signal, saved: settings.app.saved, walltimeEndsAt: settings.walltimeEndsAt })
      : new DaemonLink({
          spoolDir: settings.spoolDir,
          jobId: settings.jobId,
          paths,
          daemonCheck: settings.daemonCheck,
          graceMs: settings.daemonGraceMs,
          awaiting: () => this.state.phase === 'resuming' || this.state.phase === 'checkpointing',
          silent: (detail) => this.events.post({ type: 'daemonSilent', detail }),
        });
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => {
      this.finish = resolve;
    });
    const { state: runState, paths, mode } = this.prepared;
    runState.status = 'running';
    runState.history.push({ jobId: this.settings.jobId, startedAt: new Date(this.state.startedAt).toISOString(), mode });
    saveRunState(paths.state, runState);
    const signals = listenToSignals(this.settings.signal, (event) => this.events.post(event));
    this.stopSignals = signals.stop;
    this.events.post({ type: 'start', mode });
    if (signals.early > 0) this.events.post({ type: 'checkpointSignal' });
    return done;
  }

  /**
   * Events come from signal handlers, watchers and timers, outside any caller that could catch:
   * an error here ends the job with one line and its code, never a stack trace or a wrong 99.
   */
  private handle(event: MachineEvent): void {
    try {
      const next = step(this.state, event, Date.now());
      this.state = next.state;
      for (const action of next.actions) if (!this.ended) this.perform(action);
      if (!this.ended) this.watch.setPollPeriod(awaitsDaemon(this.state) ? this.settings.pollMs : this.settings.idlePollMs);
    } catch (error) {
      if (this.ended) return;
      this.settings.logger.log('error', error instanceof CliError ? error.message : `internal error: ${(error as Error).message}`);
      this.end(error instanceof CliError ? error.exitCode : ExitCode.Internal, 'failed');
    }
  }

  /** Reads what the run directory says and posts the events it means (decisions.ts decides which). */
  private look(): void {
    if (this.ended || this.state.phase === 'holding') return;
    const files = this.watch.readFiles(this.link.checkpointOkAtRequest);
    for (const event of eventsFromFiles(this.state, this.link.answer?.(files) ?? files)) this.events.post(event);
  }

  private perform(action: MachineAction): void {
    const { settings, watch, link } = this;
    switch (action.type) {
      case 'log':
        settings.logger.log(action.level, action.message);
        return;
      case 'spawn':
        spawnProgram(
          {
            argv: settings.argv,
            paths: this.prepared.paths,
            cwd: settings.workdir,
            env: settings.env,
            pidNamespace: settings.pidNamespace,
            // The save signal goes to the whole group, the shim too: it must outlive it to record the exit.
            survives: settings.app?.signal,
          },
          (event) => this.events.post(event),
          () => this.look(),
        );
        return;
      case 'requestCheckpoint':
        link.requestCheckpoint(action.pid, action.answerBy);
        return;
      case 'requestResume':
        link.requestResume?.(action.answerBy);
        watch.followImages();
        return;
      case 'watchProgram':
        watch.watchProgram(action.pid);
        return;
      case 'setTimer':
        clearTimeout(this.timers.get(action.name));
        this.timers.set(
          action.name,
          // What /proc says of the program when the dump bound passes: the message tells the truth.
          setTimeout(() => this.events.post({ type: 'timer', name: action.name, programState: action.name === 'dump' ? watch.programState() : undefined }), action.ms),
        );
        return;
      case 'clearTimer':
        clearTimeout(this.timers.get(action.name));
        this.timers.delete(action.name);
        return;
      case 'killProgram':
        if (watch.program) signalGroup(watch.program.pid, 'SIGKILL');
        return;
      case 'forwardSignal':
        if (watch.program) forwardSignal(watch.program, action.signal, () => this.ended, settings.logger);
        return;
      case 'exit':
        this.end(action.code, action.outcome, action.exitCode);
        return;
    }
  }

  /** Stops every source of events, then writes the run record that decides the next job. */
  private end(code: number, outcome: Outcome, exitCode?: number): void {
    if (this.ended) return;
    this.ended = true;
    this.events.close();
    const { paths, state: runState } = this.prepared;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.watch.stop();
    this.stopSignals();
    // Whatever fails while tidying up, the exit code decided above is the one the job returns.
    try {
      this.link.close();
      this.watch.pumpOutput();
      const record = endOfJobRecord(runState, {
        code,
        outcome,
        exitCode,
        relayed: this.watch.relayed(),
        checkpointAtStart: this.checkpointAtStart,
        checkpointNow: checkpointIdentity(paths.checkpointOk),
        terminating: this.state.terminating !== undefined,
        endedAt: new Date(),
      });
      if (record.removeCheckpointOk) rmSync(paths.checkpointOk, { force: true });
      if (record.removeExitStatus) rmSync(paths.exitStatus, { force: true });
      saveRunState(paths.state, record.state);
    } catch (error) {
      this.settings.logger.log('error', `while ending the job: ${(error as Error).message} (state file ${paths.state})`);
    } finally {
      this.finish(code);
    }
  }
}
