/**
 * The job-side supervisor: one loop a newcomer can read top to bottom.
 *
 *   world → events:   signals.ts (checkpoint and termination signals), program-watch.ts (run
 *                     directory, program liveness, output), the engine's link (engine/registry.ts:
 *                     the daemon's heartbeat, or the program's own save published as a checkpoint),
 *                     spawn.ts (the program's start), timers (below)
 *   events → actions: machine.ts (pure; the file and heartbeat verdicts in decisions.ts)
 *   actions → world:  perform() below, one action at a time
 *
 * Events are queued and handled one at a time: an effect that produces an event (a watcher, a
 * timer, the start of a program) posts it, and it is handled after the current one, never inside
 * it. Once the exit action is performed nothing else is: later events are dropped.
 */
import { CliError, ExitCode } from '../base/exit-codes.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { signalGroup, treeRssBytes } from '../proc/processes.js';
import { stopReason } from '../scheduler/stop-reason.js';
import { keepGenerations } from '../state/run-images.js';
import { saveRunState } from '../state/run-state.js';
import type { CheckpointLink } from '../engine/link.js';
import { endOfJobRecord, eventsFromFiles, type JobEnd } from './decisions.js';
import { endJob } from './end-of-job.js';
import { JobStop } from './job-stop.js';
import type { LaunchSettings } from './launch-settings.js';
import { EventQueue } from './event-queue.js';
import { FinalTiming } from './final-timing.js';
import { noPeriodicYet } from './machine-checkpoint.js';
import { awaitsDaemon, initialState, type MachineAction, type MachineEvent, type MachineState, type Outcome, type TimerName } from './machine-state.js';
import { step } from './machine.js';
import type { PreparedRun } from './preflight.js';
import { ProgramWatch } from './program-watch.js';
import { forwardSignal, listenToSignals } from './signals.js';
import { spawnProgram } from './spawn.js';

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
  private fail: (error: unknown) => void = () => undefined;
  /** Why the job is being stopped (job-stop.ts). The exit waits for no answer: a record without one says the clock's guess, pending. */
  private readonly stop: JobStop;
  /** The record written when the checkpoint completed, while exit 99 waits (--min-runtime): a kill then loses nothing. */
  private holdEnd?: JobEnd;
  private preemptionTimer?: NodeJS.Timeout;
  /** The scheduler was asked, at the first termination signal, whether it preempts the job. */
  private terminationAsked = false;
  /** The self-timed final checkpoint's plan, where the walltime is known (not for a program that saves itself). */
  private readonly finalTiming?: FinalTiming;

  constructor(
    private readonly settings: LaunchSettings,
    private readonly prepared: PreparedRun,
  ) {
    const { paths, state: runState } = prepared;
    this.checkpointAtStart = checkpointIdentity(paths.checkpointOk);
    this.watch = new ProgramWatch(paths, runState.relayed, {
      look: () => this.look(),
      resuming: () => this.state.phase === 'resuming',
      resumedJob: prepared.mode === 'resume',
      say: (message) => settings.logger.log('info', message),
    });
    this.link = settings.engine.link({
      spoolDir: settings.spoolDir,
      jobId: settings.jobId,
      paths,
      daemonCheck: settings.daemonCheck,
      graceMs: settings.daemonGraceMs,
      resumeFrom: prepared.checkpoint,
      awaiting: () => this.state.phase === 'resuming' || this.state.phase === 'checkpointing',
      silent: (detail) => this.events.post({ type: 'daemonSilent', detail }),
      reasonNow: () => stopReason({ now: Date.now(), signal: 'checkpoint', walltimeEndsAt: settings.walltimeEndsAt, ...settings.knownFacts }),
    });
    this.state = initialState(
      {
        dumpTimeoutMs: settings.dumpTimeoutMs,
        resumeTimeoutMs: settings.resumeTimeoutMs,
        minRuntimeMs: settings.minRuntimeMs,
        restarts: runState.restarts,
        maxRestarts: settings.maxRestarts,
        walltimeEndsAt: settings.walltimeEndsAt,
        exitAnswers: this.link.exitAnswers,
      },
      Date.now(),
    );
    this.stop = new JobStop({
      settings,
      run: runState,
      walltimeEndsAt: () => this.state.config.walltimeEndsAt,
      ended: () => this.ended,
      save: () => this.saveRecord(paths.state),
      tellReason: (reason) => this.link.tellReason(reason),
    });
    // Not where the answer is the program's own exit: its save time is its own (its engine's grace).
    if (settings.selfTimed && !this.link.exitAnswers) {
      this.finalTiming = new FinalTiming({
        walltimeEndsAt: settings.walltimeEndsAt,
        walltimeEnd: settings.walltimeEnd,
        safety: settings.dumpSafety,
        statsPath: paths.checkpointStats,
        daemonRate: () => this.link.daemonDumpRate(),
        memoryOf: treeRssBytes,
        logger: settings.logger,
        post: (event) => this.events.post(event),
        record: (plan) => {
          this.prepared.state.history[this.prepared.state.history.length - 1].finalPlan = {
            at: new Date(plan.at).toISOString(),
            bytes: plan.bytes,
            bytesPerSec: Math.round(plan.throughput.bytesPerSec),
            source: plan.throughput.source,
            estimateMs: plan.estimateMs,
          };
          this.saveRecord(paths.state);
        },
      });
    }
    this.armPeriodic();
  }

  /** --interval: whether the link can make periodic checkpoints, said here at the start; the machine says when that changes. */
  private armPeriodic(): void {
    const { settings } = this;
    if (settings.intervalMs === undefined) return;
    const periodic = this.link.periodic();
    // Said here, at the start; the machine says when that changes. The scheduler's signal still makes the final checkpoint.
    if (!periodic.ok && !periodic.askAgain) {
      settings.logger.log('warn', `--interval: no periodic checkpoints in this job: ${periodic.why}; the scheduler's signal still checkpoints the program`);
    } else {
      const periodicWhyNot = periodic.ok ? undefined : periodic.why;
      if (periodicWhyNot !== undefined) {
        settings.logger.log('warn', noPeriodicYet(periodicWhyNot, settings.intervalMs));
      }
      this.state = { ...this.state, config: { ...this.state.config, intervalMs: settings.intervalMs, periodicWhyNot } };
    }
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve, reject) => {
      this.finish = resolve;
      this.fail = reject;
    });
    const { state: runState, paths, mode } = this.prepared;
    runState.status = 'running';
    const output = this.settings.jobOutput?.length ? { output: this.settings.jobOutput } : {};
    runState.history.push({ jobId: this.settings.jobId, startedAt: new Date(this.state.startedAt).toISOString(), mode, ...output });
    saveRunState(paths.state, runState);
    this.stop.completePast();
    const signals = listenToSignals(this.settings.signal, (event) => this.events.post(event));
    this.stopSignals = signals.stop;
    this.events.post({ type: 'start', mode });
    if (signals.early > 0) this.events.post({ type: 'checkpointSignal' });
    this.pollPreemption();
    return done;
  }

  /** --preemption-poll: a preemption the scheduler announces to no process of the job becomes its checkpoint signal. */
  private pollPreemption(): void {
    const { preempted, preemptionPollMs } = this.settings;
    if (!preempted || preemptionPollMs === undefined) return;
    this.preemptionTimer = setTimeout(() => {
      void preempted().then(
        (preempted) => {
          if (this.ended) return;
          if (!preempted) return this.pollPreemption();
          this.settings.logger.log('info', 'the scheduler preempts this job (--preemption-poll): checkpointing now');
          this.stop.classify('checkpoint', { said: 'preemption' });
          this.events.post({ type: 'checkpointSignal' });
        },
        () => this.pollPreemption(),
      );
    }, preemptionPollMs);
  }

  /**
   * The first termination signal, where the scheduler can say whether it preempts the job: asked
   * first (bounded), then handled with the answer. Slurm 22.05 ends a preempted job with SIGTERM
   * to its batch shell, KillWait (30 s by default) before SIGKILL and its own requeue: that
   * SIGTERM is the job's last chance to checkpoint (machine.ts). True when the signal waits for the answer.
   */
  private askWhetherPreempted(event: Extract<MachineEvent, { type: 'terminate' }>): boolean {
    const { preempted } = this.settings;
    if (!preempted || event.preempted !== undefined || this.terminationAsked) return false;
    if (this.state.phase !== 'running' && this.state.phase !== 'checkpointing') return false;
    this.terminationAsked = true;
    void preempted()
      .catch(() => false)
      .then((answer) => this.events.post({ ...event, preempted: answer }));
    return true;
  }

  /** Saves the run record as it stands: the checkpoint's, once it completed, else the running job's. */
  private saveRecord(path: string): void {
    try {
      saveRunState(path, this.holdEnd ? endOfJobRecord(this.prepared.state, { ...this.holdEnd, stop: this.stop.now() }).state : this.prepared.state);
    } catch (error) {
      this.settings.logger.log('error', `cannot save the run record ${path}: ${(error as Error).message}`);
    }
  }

  /**
   * Events come from signal handlers, watchers and timers, outside any caller that could catch:
   * an error here ends the job with one line and its code, never a stack trace or a wrong 99.
   */
  private handle(event: MachineEvent): void {
    try {
      if (event.type === 'terminate' && this.askWhetherPreempted(event)) return;
      if (event.type === 'checkpointSignal') this.stop.classify('checkpoint');
      // The planned final checkpoint stands for the walltime's signal: its reason is known, nobody is asked.
      if (event.type === 'timer' && event.name === 'final') this.stop.classify('checkpoint', { said: 'walltime', source: 'ckpt-run timed its final checkpoint before the walltime' });
      if (event.type === 'checkpointSignal' && !event.selfTimed) {
        const short = this.finalTiming?.signalCame(Date.now());
        if (short) this.settings.logger.log('warn', short);
      }
      if (event.type === 'terminate') this.stop.classify('terminate', event.preempted ? { said: 'preemption', preemptible: true } : undefined);
      const before = this.state.phase;
      const next = step(this.state, event, Date.now());
      this.state = next.state;
      if (next.state.phase === 'holding' && before !== 'holding') this.recordHold();
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
    for (const event of eventsFromFiles(this.state, this.link.answer(files))) this.events.post(event);
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
            survives: link.exitAnswers && [link.exitAnswers.signal, ...(link.exitAnswers.periodicSignal ? [link.exitAnswers.periodicSignal] : [])],
          },
          (event) => this.events.post(event),
          () => this.look(),
        );
        return;
      case 'requestCheckpoint':
        link.requestCheckpoint(action.pid, action.answerBy, action.leaveRunning);
        return;
      case 'checkpointKept':
        for (const line of keepGenerations(this.prepared.paths, settings.keep)) settings.logger.log('warn', line);
        this.finalTiming?.measured(action.figures);
        if (action.periodic) this.noteRelayed();
        return;
      case 'requestResume':
        link.requestResume(action.answerBy);
        watch.followImages();
        return;
      case 'watchProgram':
        watch.watchProgram(action.pid);
        this.finalTiming?.watch(action.pid);
        return;
      case 'setTimer':
        clearTimeout(this.timers.get(action.name));
        this.timers.set(
          action.name,
          // What /proc says of the program when the dump bound passes: the message tells the truth.
          setTimeout(
            () =>
              this.events.post({
                type: 'timer',
                name: action.name,
                programState: action.name === 'dump' ? watch.programState() : undefined,
                periodic: action.name === 'interval' ? link.periodic() : undefined,
              }),
            action.ms,
          ),
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

  /**
   * The output relayed so far, saved at each periodic checkpoint: a job killed later without a
   * word (a crash) leaves the next one this count, not the one of the job before.
   */
  private noteRelayed(): void {
    this.watch.pumpOutput();
    this.prepared.state.relayed = this.watch.relayed();
    this.saveRecord(this.prepared.paths.state);
  }

  /** How the job ends, for the run record, as the world stands now. */
  private jobEnd(code: number, outcome: Outcome, exitCode?: number): JobEnd {
    return {
      code,
      outcome,
      exitCode,
      relayed: this.watch.relayed(),
      checkpointAtStart: this.checkpointAtStart,
      checkpointNow: checkpointIdentity(this.prepared.paths.checkpointOk),
      terminating: this.state.terminating !== undefined,
      endedAt: new Date(),
      stop: this.stop.now(),
    };
  }

  /** The checkpoint completed and exit 99 waits for --min-runtime: the record says so now, in case the job is killed meanwhile. */
  private recordHold(): void {
    this.watch.pumpOutput();
    this.holdEnd = this.jobEnd(ExitCode.Resubmit, 'checkpointed');
    this.saveRecord(this.prepared.paths.state);
  }

  /** Stops every source of events, then ends the job (end-of-job.ts), which says the exit code. */
  private end(code: number, outcome: Outcome, exitCode?: number): void {
    if (this.ended) return;
    this.ended = true;
    this.events.close();
    for (const timer of this.timers.values()) clearTimeout(timer);
    clearTimeout(this.preemptionTimer);
    this.finalTiming?.stop();
    this.watch.stop();
    this.stopSignals();
    const { paths, state: run } = this.prepared;
    const { keepImages, requeueCommand, logger } = this.settings;
    const tidy = (): void => {
      this.link.close();
      this.watch.pumpOutput();
    };
    const jobEnd = (): JobEnd => this.jobEnd(code, outcome, exitCode);
    endJob({ code, paths, run, stop: this.stop.now(), tidy, jobEnd, keepImages, requeueCommand, logger }).then(this.finish, this.fail);
  }
}
