/**
 * The launcher's state machine: pure, no I/O. The driver (driver.ts) turns signals, file
 * events, process exits and timers into events, and carries out the actions returned.
 *
 *   fresh:  starting → running → checkpointing → (program gone + checkpoint_ok) → exit 99
 *   resume: resuming → (pidfile) → running → … → the program's own exit code
 *
 * The one rule that matters most: exit 99 (resubmit) only when a checkpoint completed since our
 * request (a new checkpoint_ok) AND the program is gone without an exit status of its own.
 */
import { constants } from 'node:os';
import { ExitCode } from '../cli/exit-codes.js';

export type Phase = 'starting' | 'resuming' | 'running' | 'checkpointing' | 'exiting';

export type TimerName = 'dump' | 'resume' | 'minRuntime';

export interface MachineConfig {
  /** How long the daemon may take to complete a dump before we say so. */
  dumpTimeoutMs: number;
  /** How long the daemon may take to restore before we give up with exit 3. */
  resumeTimeoutMs: number;
  /** OAR resubmits only jobs that ran longer than 60 s: exit 99 not before this much job time. */
  minRuntimeMs: number;
  /** Resubmissions this run has had already (from the state file). */
  restarts: number;
  /** Past this many resubmissions, stop with an error instead of exiting 99. */
  maxRestarts: number;
  /** When the scheduler kills the job (the driver's clock), where it says. */
  walltimeEndsAt?: number;
}

export interface MachineState {
  phase: Phase;
  config: MachineConfig;
  /** When the job started (ms, the driver's clock). */
  startedAt: number;
  /** PID of the root of the program's tree, once known. */
  pid?: number;
  /** A checkpoint signal came before the PID was known. */
  signalPending: boolean;
  /** A checkpoint request is out and not yet answered (success, failure or timeout). */
  requestOutstanding: boolean;
  /** When the last checkpoint request went out. */
  checkpointRequestedAt?: number;
  /** A new checkpoint_ok appeared since our last request. */
  checkpointComplete: boolean;
  /** The program's tree is gone without an exit status (killed, e.g. by the dump). */
  programGone: boolean;
  /** A termination signal was forwarded to the program. */
  terminating?: NodeJS.Signals;
}

export type MachineEvent =
  | { type: 'start'; mode: 'fresh' | 'resume' }
  | { type: 'spawned'; pid: number }
  | { type: 'restored'; pid: number }
  | { type: 'restoreFailed'; reason: string; retryable: boolean }
  | { type: 'checkpointSignal' }
  | { type: 'checkpointOk' }
  /** program: how the daemon found the program after a dump it cut short (its deadline). */
  | { type: 'dumpFailed'; reason: string; program?: 'running' | 'frozen' | 'gone' }
  | { type: 'daemonSilent'; detail: string }
  | { type: 'programExited'; exitCode: number }
  | { type: 'programGone' }
  /** programState: for the dump timer, the program's state letter in /proc (T/t: stopped). */
  | { type: 'timer'; name: TimerName; programState?: string }
  | { type: 'terminate'; signal: NodeJS.Signals };

export type Outcome = 'checkpointed' | 'finished' | 'failed';

export type MachineAction =
  | { type: 'spawn' }
  /** answerBy: epoch ms by which the daemon must have answered (its criu deadline, answerBy()). */
  | { type: 'requestCheckpoint'; pid: number; answerBy: number }
  | { type: 'requestResume'; answerBy: number }
  | { type: 'watchProgram'; pid: number }
  | { type: 'setTimer'; name: TimerName; ms: number }
  | { type: 'clearTimer'; name: TimerName }
  | { type: 'forwardSignal'; signal: NodeJS.Signals }
  | { type: 'log'; level: 'info' | 'warn' | 'error' | 'debug'; message: string }
  | { type: 'exit'; code: number; outcome: Outcome; exitCode?: number };

export interface Step {
  state: MachineState;
  actions: MachineAction[];
}

export function initialState(config: MachineConfig, startedAt: number): MachineState {
  return {
    phase: 'starting',
    config,
    startedAt,
    signalPending: false,
    requestOutstanding: false,
    checkpointComplete: false,
    programGone: false,
  };
}

/** Under a second in ms (a dump of a small program), else in tenths of a second. */
const duration = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 100) / 10} s`);

const log = (level: 'info' | 'warn' | 'error' | 'debug', message: string): MachineAction => ({
  type: 'log',
  level,
  message,
});

function exiting(state: MachineState, actions: MachineAction[], exit: MachineAction): Step {
  return { state: { ...state, phase: 'exiting' }, actions: [...actions, exit] };
}

/** What /proc says of the program when the daemon does not answer: the truth, not a guess. */
function programNow(state: string | undefined): string {
  if (state === 't' || state === 'T') {
    return `the program is STOPPED (state ${state}: a criu that is still running holds it frozen); the next checkpoint signal asks again, ask the node's admin (ckpt-daemon --check)`;
  }
  return 'the program is running; the next checkpoint signal asks again';
}

/**
 * The daemon answers this long before the job stops waiting (a fifth of a short wait), so that
 * the job can report why, and before the walltime (a dump still running then is killed with the job).
 */
export const ANSWER_MARGIN_MS = 5000;

/** When the daemon must answer a request that the job waits WAITMS for. At least a second from now. */
export function answerBy(now: number, waitMs: number, walltimeEndsAt?: number): number {
  const beforeTimeout = now + waitMs - Math.min(ANSWER_MARGIN_MS, waitMs / 5);
  const beforeWalltime = (walltimeEndsAt ?? Infinity) - ANSWER_MARGIN_MS;
  return Math.max(now + 1000, Math.min(beforeTimeout, beforeWalltime));
}

function failWith(state: MachineState, code: number, message: string): Step {
  return exiting(state, [log('error', message)], { type: 'exit', code, outcome: 'failed' });
}

/** Sends the checkpoint request for a known PID and arms the dump bound. */
function requestCheckpoint(state: MachineState, pid: number, now: number, actions: MachineAction[]): Step {
  return {
    state: {
      ...state,
      phase: 'checkpointing',
      signalPending: false,
      requestOutstanding: true,
      checkpointRequestedAt: now,
      checkpointComplete: false,
    },
    actions: [
      ...actions,
      log('info', `checkpoint requested for PID ${pid}`),
      { type: 'requestCheckpoint', pid, answerBy: answerBy(now, state.config.dumpTimeoutMs, state.config.walltimeEndsAt) },
      { type: 'setTimer', name: 'dump', ms: state.config.dumpTimeoutMs },
    ],
  };
}

/** The program's root PID is known (spawned or restored): watch it, serve a pending signal. */
function programKnown(state: MachineState, pid: number, now: number, actions: MachineAction[]): Step {
  const next: MachineState = { ...state, phase: 'running', pid };
  const watched = [...actions, { type: 'watchProgram', pid } as MachineAction];
  if (state.signalPending) {
    return requestCheckpoint(next, pid, now, [
      ...watched,
      log('info', 'serving the checkpoint signal that arrived before the program was running'),
    ]);
  }
  return { state: next, actions: watched };
}

/** Exit 99 once the job has run long enough for the scheduler to resubmit it. */
function resubmit(state: MachineState, now: number, reason: string): Step {
  const { restarts, maxRestarts, minRuntimeMs } = state.config;
  if (restarts >= maxRestarts) {
    return failWith(
      state,
      ExitCode.MaxRestarts,
      `${reason}, but this run was already resubmitted ${restarts} times (--max-restarts ` +
        `${maxRestarts}): not exiting 99. The checkpoint is kept: to resume it, submit the ` +
        `job again with a higher --max-restarts.`,
    );
  }
  const remaining = state.startedAt + minRuntimeMs - now;
  if (remaining > 0) {
    return {
      state: { ...state, phase: 'exiting' },
      actions: [
        log(
          'info',
          `${reason}; waiting ${duration(remaining)} before exit 99: the scheduler resubmits ` +
            `only jobs that ran more than ${duration(Math.max(0, minRuntimeMs - 2000))} (--min-runtime)`,
        ),
        { type: 'setTimer', name: 'minRuntime', ms: remaining },
      ],
    };
  }
  return exiting(state, [log('info', `${reason}; exit 99 so that the job is resubmitted`)], {
    type: 'exit',
    code: ExitCode.Resubmit,
    outcome: 'checkpointed',
  });
}

const walltimeLeft = (state: MachineState, now: number): string =>
  state.config.walltimeEndsAt === undefined ? '' : ` (the walltime ends in ${duration(state.config.walltimeEndsAt - now)})`;

/**
 * A dump that takes more than half of what the walltime left when it was asked for is close to
 * being killed with the job: a bigger state, a busier filesystem, and the work since the
 * previous checkpoint is lost. The job cannot read the --checkpoint delay, only the walltime.
 */
function walltimeMargin(state: MachineState, dumpMs: number): MachineAction[] {
  const { walltimeEndsAt } = state.config;
  if (walltimeEndsAt === undefined || state.checkpointRequestedAt === undefined) return [];
  const leftMs = walltimeEndsAt - state.checkpointRequestedAt;
  if (leftMs <= 0 || dumpMs <= leftMs / 2) return [];
  return [
    log(
      'warn',
      `the dump took ${duration(dumpMs)} of the ${duration(leftMs)} left before the walltime when it was asked for: ` +
        `a dump still running at the walltime is killed with the job, and the work since the previous checkpoint ` +
        `is lost. Leave it more time: the checkpoint signal ${Math.ceil((2 * dumpMs) / 1000)} s or more before the walltime ` +
        `(OAR: oarsub --checkpoint; Slurm: sbatch --signal=B:USR2@)`,
    ),
  ];
}

/** Exit 99 iff the program is gone and a checkpoint completed after our request. */
function checkCheckpointDone(state: MachineState, now: number): Step {
  if (state.programGone && state.checkpointComplete) {
    const dumpMs = now - (state.checkpointRequestedAt ?? now);
    const done = resubmit({ ...state, requestOutstanding: false }, now, `checkpoint complete in ${duration(dumpMs)}, program stopped`);
    return { state: done.state, actions: [...walltimeMargin(state, dumpMs), ...done.actions] };
  }
  return { state, actions: [] };
}

export function step(state: MachineState, event: MachineEvent, now: number): Step {
  if (state.phase === 'exiting' && !(event.type === 'timer' && event.name === 'minRuntime')) {
    if (event.type === 'checkpointSignal') {
      return { state, actions: [log('debug', 'checkpoint signal ignored: the job is ending')] };
    }
    return { state, actions: [] };
  }

  switch (event.type) {
    case 'start':
      if (event.mode === 'fresh') return { state, actions: [{ type: 'spawn' }] };
      return {
        state: { ...state, phase: 'resuming' },
        actions: [
          { type: 'requestResume', answerBy: answerBy(now, state.config.resumeTimeoutMs) },
          { type: 'setTimer', name: 'resume', ms: state.config.resumeTimeoutMs },
        ],
      };

    case 'spawned': {
      const known = programKnown(state, event.pid, now, []);
      if (!state.terminating) return known;
      // A termination signal came while the program was being started: it gets it now.
      return { state: known.state, actions: [...known.actions, { type: 'forwardSignal', signal: state.terminating }] };
    }

    case 'restored':
      if (state.phase !== 'resuming') return { state, actions: [] };
      return programKnown(state, event.pid, now, [
        { type: 'clearTimer', name: 'resume' },
        log('info', `program restored as PID ${event.pid}, running ${duration(now - state.startedAt)} after the job started`),
      ]);

    case 'restoreFailed': {
      // While running: a lazy restore whose memory never all came in (the daemon killed the tree).
      if (state.phase !== 'resuming' && !(state.phase === 'running' && !state.requestOutstanding)) return { state, actions: [] };
      const cleared: MachineAction = { type: 'clearTimer', name: 'resume' };
      if (event.retryable) {
        const retry = resubmit(state, now, `restore failed (${event.reason}); the checkpoint is intact`);
        return { state: retry.state, actions: [cleared, ...retry.actions] };
      }
      const failed = failWith(
        state,
        ExitCode.RestoreFailed,
        `restore failed: ${event.reason}. The checkpoint is kept; fix the cause and submit again.`,
      );
      return { state: failed.state, actions: [cleared, ...failed.actions] };
    }

    case 'checkpointSignal':
      if (state.phase === 'starting' || state.phase === 'resuming') {
        return {
          state: { ...state, signalPending: true },
          actions: [log('info', 'checkpoint signal received before the program runs: will checkpoint as soon as it does')],
        };
      }
      if (state.phase === 'checkpointing') {
        return { state, actions: [log('info', 'checkpoint signal ignored: a checkpoint is already in progress')] };
      }
      return requestCheckpoint(state, state.pid as number, now, [log('info', `checkpoint signal received${walltimeLeft(state, now)}`)]);

    case 'checkpointOk': {
      if (!state.requestOutstanding) return { state, actions: [] };
      const next = { ...state, checkpointComplete: true };
      const done = checkCheckpointDone(next, now);
      const cleared: MachineAction[] = done.state.phase === 'exiting' ? [{ type: 'clearTimer', name: 'dump' }] : [];
      return { state: done.state, actions: [...cleared, ...done.actions] };
    }

    case 'dumpFailed':
      if (!state.requestOutstanding) return { state, actions: [] };
      return {
        state: { ...state, phase: 'running', requestOutstanding: false },
        actions: [
          { type: 'clearTimer', name: 'dump' },
          log(
            'error',
            event.program === 'frozen'
              ? `checkpoint failed: ${event.reason}. The daemon reports the program STILL FROZEN: it does not run; ask the node's admin (ckpt-daemon --check).`
              : `checkpoint failed: ${event.reason}. The program keeps running; the next checkpoint signal tries again.`,
          ),
        ],
      };

    case 'daemonSilent':
      if (state.phase === 'resuming') {
        return failWith(state, ExitCode.DaemonAbsent, `${event.detail}; giving up the resume (the checkpoint is kept)`);
      }
      if (state.phase === 'checkpointing') {
        return {
          state: { ...state, phase: 'running' },
          actions: [
            { type: 'clearTimer', name: 'dump' },
            log('error', `${event.detail}; no checkpoint can be made, the program keeps running`),
          ],
        };
      }
      return { state, actions: [] };

    case 'programExited':
      if (state.terminating && event.exitCode === 128 + signalNumber(state.terminating)) {
        // It died of the signal passed on: the job was stopped, the run did not end, and its
        // last checkpoint stays resumable (as when the tree is gone without a status).
        return exiting(state, [log('info', `program stopped by ${state.terminating}`)], {
          type: 'exit',
          code: event.exitCode,
          outcome: 'failed',
        });
      }
      return exiting(
        state,
        [log('info', `program exited with code ${event.exitCode}`)],
        { type: 'exit', code: event.exitCode, outcome: 'finished', exitCode: event.exitCode },
      );

    case 'programGone': {
      if (state.programGone) return { state, actions: [] };
      const next = { ...state, programGone: true };
      if (state.requestOutstanding) {
        const done = checkCheckpointDone(next, now);
        if (done.state.phase === 'exiting') {
          return { state: done.state, actions: [{ type: 'clearTimer', name: 'dump' }, ...done.actions] };
        }
        return { state: next, actions: [log('debug', 'program stopped; waiting for the daemon to confirm the checkpoint')] };
      }
      if (state.terminating) {
        return exiting(next, [], { type: 'exit', code: 128 + signalNumber(state.terminating), outcome: 'failed' });
      }
      return failWith(
        next,
        ExitCode.ProgramLost,
        'the program disappeared without an exit status and no checkpoint was made ' +
          '(killed from outside?); not exiting 99',
      );
    }

    case 'timer':
      switch (event.name) {
        case 'minRuntime':
          return exiting(state, [log('info', 'exit 99 so that the job is resubmitted')], {
            type: 'exit',
            code: ExitCode.Resubmit,
            outcome: 'checkpointed',
          });
        case 'resume':
          if (state.phase !== 'resuming') return { state, actions: [] };
          return failWith(
            state,
            ExitCode.ResumeTimeout,
            `resume timed out after ${duration(state.config.resumeTimeoutMs)}: no checkpoint/pidfile ` +
              'from the daemon (is ckpt-daemon running on this node? see --resume-timeout)',
          );
        case 'dump':
          if (!state.requestOutstanding) return { state, actions: [] };
          if (state.programGone) {
            return failWith(
              state,
              ExitCode.ProgramLost,
              `the program stopped but the daemon did not confirm the checkpoint within ` +
                `${duration(state.config.dumpTimeoutMs)} (no new checkpoint_ok); not exiting 99`,
            );
          }
          return {
            // A late checkpoint_ok still counts: requestOutstanding stays set.
            state: { ...state, phase: 'running' },
            actions: [
              log(
                'warn',
                `the daemon has not answered the dump request after ${duration(state.config.dumpTimeoutMs)} ` +
                  `(--dump-timeout; ckpt-daemon answers before it, so this node's daemon is another one or stuck): ${programNow(event.programState)}`,
              ),
            ],
          };
      }
      return { state, actions: [] };

    case 'terminate':
      if (!state.terminating && state.phase === 'starting') {
        // The program is being started: leaving now would leave it running with no one to watch it.
        return {
          state: { ...state, terminating: event.signal },
          actions: [log('warn', `${event.signal} received while the program starts: passing it on as soon as it runs (send it again to leave at once)`)],
        };
      }
      if (state.terminating || state.pid === undefined) {
        return exiting(state, [log('warn', `${event.signal} received; exiting now`)], {
          type: 'exit',
          code: 128 + signalNumber(event.signal),
          outcome: 'failed',
        });
      }
      return {
        state: { ...state, terminating: event.signal },
        actions: [
          log('warn', `${event.signal} received: passing it to the program (send it again to leave at once)`),
          { type: 'forwardSignal', signal: event.signal },
        ],
      };
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal];
}
