/**
 * The supervisor's state machine: pure, no I/O, time given by the caller. The supervisor
 * (supervisor.ts) turns signals, file events, process exits and timers into events, and carries
 * out the actions returned, one event at a time.
 *
 *   fresh:  starting → running → checkpointing → (program gone + checkpoint_ok) → exit 99
 *   resume: resuming → (pidfile) → running → … → the program's own exit code
 *   periodic (--interval): running → checkpointing (the program runs on) → checkpoint_ok → running
 *   app:    starting → running → checkpointing (the program saves on a signal) → (its agreed
 *           exit, published as checkpoint_ok by app-link.ts) → exit 99; a resume starts it again
 *
 * The one rule that matters most: exit 99 (resubmit) only when a checkpoint completed since our
 * request (a new checkpoint_ok) AND the program is gone without an exit status of its own.
 *
 * Reading guide: the state is keyed by phase (a phase carries exactly what it needs, e.g. a
 * running program always has its PID), and each event has one handler in HANDLERS below.
 */
import { constants } from 'node:os';
import { ExitCode } from '../base/exit-codes.js';
import { formatMegabytes } from '../base/sizes.js';
import { plural, quoted } from '../base/words.js';
import { describeCarried, describeStays, type LocalState } from '../protocol/local-state.js';
import type { KeptFigures } from '../protocol/run-dir.js';

export type TimerName = 'dump' | 'resume' | 'minRuntime' | 'interval' | 'final';

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
  /** When the scheduler kills the job (the supervisor's clock), where it says. */
  walltimeEndsAt?: number;
  /** --interval: a checkpoint that leaves the program running this often (when the daemon can do them). */
  intervalMs?: number;
  /**
   * Why the node's daemon cannot leave the program running, while it cannot (no heartbeat yet:
   * restarting, upgraded; an older daemon): the interval timer asks again each time.
   */
  periodicWhyNot?: string;
  /** The application-level engine (app-link.ts), when chosen: the program saves itself on a signal and exits. */
  app?: AppEngineConfig;
  /** Why the final checkpoint is made when its planned time comes (final-plan.ts), once planned. */
  finalWhy?: string;
}

export interface AppEngineConfig {
  /** The signal that asks the program to save and exit (--app-signal). */
  signal: NodeJS.Signals;
  /** --app-grace: how long it may take; undefined: until the walltime's bound, or DEFAULT_APP_GRACE_MS without a walltime. */
  graceMs?: number;
  /** --app-periodic-signal: asks for a save after which the program runs on (--interval). */
  periodicSignal?: NodeJS.Signals;
}

/** How long a program that saves itself may take to exit when neither --app-grace nor a walltime says. */
export const DEFAULT_APP_GRACE_MS = 60_000;

/** A checkpoint request that is out and not answered yet (by success or failure). */
export interface CheckpointRequest {
  /** When it went out (ms, the supervisor's clock). */
  at: number;
  /** A new checkpoint_ok appeared since. */
  complete: boolean;
  /** --dump-timeout passed unanswered: a late checkpoint_ok still counts, but only for a bounded while more. */
  late?: boolean;
  /** A periodic checkpoint: the program runs on after it. */
  periodic?: boolean;
  /** The scheduler's signal came during a periodic checkpoint: the final one follows it. */
  thenStop?: boolean;
  /** What the daemon said of the checkpoint, once complete. */
  figures?: CheckpointFigures;
}

/** What the daemon says of a complete checkpoint (DIR/checkpoint_stats), where it says it. */
export interface CheckpointFigures {
  /** How long the program was frozen. */
  frozenMs?: number;
  /** The images' size. */
  bytes?: number;
  /** The program's node-local files: what travelled with the images, what stays on this node. */
  localState?: LocalState;
  /** The content of the files open for writing kept with it (protocol/kept-files.ts). */
  kept?: KeptFigures;
}

interface Common {
  config: MachineConfig;
  /** When the job started (ms, the supervisor's clock). */
  startedAt: number;
  /** A termination signal was (or, while the program starts, will be) passed to the program. */
  terminating?: NodeJS.Signals;
}

/** Before the program runs: a checkpoint signal now is served as soon as its PID is known. */
interface BeforeProgram {
  signalPending: boolean;
}

/** The program runs under the job (spawned or restored). */
interface WithProgram {
  /** PID of the root of the program's tree. */
  pid: number;
  /** The tree is gone without an exit status (killed, e.g. by the dump). */
  programGone: boolean;
}

export type MachineState = Common &
  (
    | ({ phase: 'starting' } & BeforeProgram)
    | ({ phase: 'resuming' } & BeforeProgram)
    /** request: one left unanswered past --dump-timeout or a silent daemon; a late checkpoint_ok still counts. */
    | ({ phase: 'running'; request?: CheckpointRequest } & WithProgram)
    | ({ phase: 'checkpointing'; request: CheckpointRequest } & WithProgram)
    /** The checkpoint is complete: exit 99 when the minRuntime timer fires (--min-runtime). */
    | { phase: 'holding' }
    /** The exit action went out: nothing more happens. */
    | { phase: 'ended' }
  );

export type Phase = MachineState['phase'];
type InPhase<P extends Phase> = Extract<MachineState, { phase: P }>;
type Watched = InPhase<'running' | 'checkpointing'>;

export type MachineEvent =
  | { type: 'start'; mode: 'fresh' | 'resume' }
  | { type: 'spawned'; pid: number }
  | { type: 'spawnFailed'; reason: string }
  | { type: 'restored'; pid: number }
  | { type: 'restoreFailed'; reason: string; retryable: boolean }
  /** selfTimed: the planned final checkpoint came due with no signal (the final timer), and why. */
  | { type: 'checkpointSignal'; selfTimed?: string }
  /** The supervisor's plan for the final checkpoint (final-plan.ts): AT, on the machine's clock; WHY is said then. */
  | { type: 'finalPlanned'; at: number; walltimeEndsAt: number; why: string }
  | { type: 'checkpointOk'; figures?: CheckpointFigures }
  /** program: how the daemon found the program after a dump it cut short (its deadline). */
  | { type: 'dumpFailed'; reason: string; program?: 'running' | 'frozen' | 'gone' }
  | { type: 'daemonSilent'; detail: string }
  | { type: 'programExited'; exitCode: number }
  | { type: 'programGone' }
  /**
   * programState: for the dump timer, the program's state letter in /proc (T/t: stopped);
   * periodic: for the interval timer, whether the node's daemon can leave the program running now.
   */
  | { type: 'timer'; name: TimerName; programState?: string; periodic?: PeriodicAnswer }
  /** PREEMPTED: the scheduler, asked at the signal, said it preempts the job (undefined: not asked). */
  | { type: 'terminate'; signal: NodeJS.Signals; preempted?: boolean };

/** Whether the checkpoint link can make a checkpoint that leaves the program running; ASKAGAIN: it may later (a daemon's heartbeat). */
export type PeriodicAnswer = { ok: true } | { ok: false; why: string; askAgain: boolean };

export type Outcome = 'checkpointed' | 'finished' | 'failed';

export type MachineAction =
  | { type: 'spawn' }
  /** answerBy: epoch ms by which the daemon must have answered (its criu deadline, answerBy()); leaveRunning: a periodic one. */
  | { type: 'requestCheckpoint'; pid: number; answerBy: number; leaveRunning: boolean }
  /** A checkpoint is complete (the supervisor records it and keeps --keep of them). */
  | { type: 'checkpointKept'; periodic: boolean; figures?: CheckpointFigures }
  | { type: 'requestResume'; answerBy: number }
  | { type: 'watchProgram'; pid: number }
  | { type: 'setTimer'; name: TimerName; ms: number }
  | { type: 'clearTimer'; name: TimerName }
  | { type: 'forwardSignal'; signal: NodeJS.Signals }
  /** SIGKILL to the program's process group (app engine: a program that did not save in time). */
  | { type: 'killProgram' }
  | { type: 'log'; level: 'info' | 'warn' | 'error' | 'debug'; message: string }
  | { type: 'exit'; code: number; outcome: Outcome; exitCode?: number };

export interface Step {
  state: MachineState;
  actions: MachineAction[];
}

export function initialState(config: MachineConfig, startedAt: number): MachineState {
  return { phase: 'starting', config, startedAt, signalPending: false };
}

/** Whether the job waits on the daemon (a request out, a restore under way): the supervisor then polls faster. */
export function awaitsDaemon(state: MachineState): boolean {
  return state.phase === 'resuming' || state.phase === 'checkpointing' || (state.phase === 'running' && state.request !== undefined);
}

/** Under a second in ms (a dump of a small program), else in tenths of a second. */
const duration = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 100) / 10} s`);

const log = (level: 'info' | 'warn' | 'error' | 'debug', message: string): MachineAction => ({ type: 'log', level, message });

const signalNumber = (signal: NodeJS.Signals): number => constants.signals[signal];

const unchanged = (state: MachineState): Step => ({ state, actions: [] });

function ended(state: MachineState, actions: MachineAction[], exit: MachineAction): Step {
  return { state: { config: state.config, startedAt: state.startedAt, terminating: state.terminating, phase: 'ended' }, actions: [...actions, exit] };
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
  return ended(state, [log('error', message)], { type: 'exit', code, outcome: 'failed' });
}

/** Puts ACTIONS before those of STEP. */
const after = (actions: MachineAction[], step: Step): Step => ({ state: step.state, actions: [...actions, ...step.actions] });

/**
 * How long a program that saves itself may take to exit: --app-grace, else what the walltime
 * leaves (else DEFAULT_APP_GRACE_MS), and never past the walltime's margin: a program still
 * saving then is killed with the job, and the job must say so before.
 */
export function appGrace(config: MachineConfig, app: AppEngineConfig, now: number): { ms: number; by: string } {
  const walltimeBound = config.walltimeEndsAt === undefined ? Infinity : config.walltimeEndsAt - ANSWER_MARGIN_MS - now;
  const wanted = app.graceMs ?? (config.walltimeEndsAt === undefined ? DEFAULT_APP_GRACE_MS : Infinity);
  const by = walltimeBound <= wanted ? 'the walltime' : app.graceMs === undefined ? 'the default, --app-grace' : '--app-grace';
  return { ms: Math.max(1000, Math.min(wanted, walltimeBound)), by };
}

/**
 * Sends the checkpoint request for a running program and arms its bound (the dump's, or the
 * program's own save); PERIODIC: a dump after which it runs on.
 */
function requestCheckpoint(state: InPhase<'running'>, now: number, actions: MachineAction[], periodic = false): Step {
  const { pid, programGone, config, startedAt, terminating } = state;
  const boundMs = config.app ? appGrace(config, config.app, now).ms : config.dumpTimeoutMs;
  return {
    state: { phase: 'checkpointing', config, startedAt, terminating, pid, programGone, request: { at: now, complete: false, periodic } },
    actions: [
      ...actions,
      // Said once the request is out (or the signal sent): whoever reads the log finds it there.
      { type: 'requestCheckpoint', pid, answerBy: answerBy(now, boundMs, config.walltimeEndsAt), leaveRunning: periodic },
      log(
        'info',
        config.app
          ? `asking the program to save: ${config.app.signal} to its process group (PID ${pid}); waiting up to ${duration(boundMs)} for it to exit`
          : periodic
            ? `periodic checkpoint requested for PID ${pid} (it runs on)`
            : `checkpoint requested for PID ${pid}`,
      ),
      { type: 'setTimer', name: 'dump', ms: boundMs },
    ],
  };
}

/**
 * A periodic save of a program that saves itself (--interval, --app-periodic-signal): the signal
 * goes out and nothing is awaited (the program saves and runs on, unconfirmed); the next one is timed.
 */
function periodicSave(state: InPhase<'running'>, app: AppEngineConfig, now: number): Step {
  return {
    state,
    actions: [
      log('info', `periodic save: ${app.periodicSignal} to the program's process group (PID ${state.pid}); it runs on`),
      { type: 'requestCheckpoint', pid: state.pid, answerBy: now, leaveRunning: true },
      ...nextPeriodic(state.config),
    ],
  };
}

/** Why a job with --interval makes no periodic checkpoint for now, and that it asks again. */
export const noPeriodicYet = (why: string, intervalMs: number): string =>
  `--interval: no periodic checkpoint for now: ${why}; asking again every ${duration(intervalMs)}: they start as soon as the daemon can (the scheduler's signal still checkpoints the program)`;

/**
 * The interval is up and nothing is out: a periodic checkpoint if the node's daemon can leave
 * the program running now (asked at each interval: a daemon restarting when the job started
 * has no heartbeat for a while), else the next question is timed. Each change is logged once.
 */
function periodicIfDaemonCan(state: InPhase<'running'>, can: PeriodicAnswer, now: number): Step {
  const { periodicWhyNot, intervalMs = 0 } = state.config;
  if (!can.ok) {
    const config = { ...state.config, periodicWhyNot: can.why };
    const said =
      periodicWhyNot === undefined
        ? log('warn', noPeriodicYet(can.why, intervalMs))
        : log('debug', `--interval: still no periodic checkpoint: ${can.why}`);
    return { state: { ...state, config }, actions: [said, ...nextPeriodic(config)] };
  }
  const config = { ...state.config, periodicWhyNot: undefined };
  const started = periodicWhyNot === undefined ? [] : [log('info', `--interval: the node's daemon can now leave the program running: periodic checkpoints start, every ${duration(intervalMs)}`)];
  return requestCheckpoint({ ...state, config }, now, started, true);
}

/** The next periodic checkpoint's timer (--interval), when there are periodic checkpoints. */
const nextPeriodic = (config: MachineConfig): MachineAction[] =>
  config.intervalMs === undefined ? [] : [{ type: 'setTimer', name: 'interval', ms: config.intervalMs }];

/** "1.2 s (program frozen 340 ms, 12.0 MB)": how long a checkpoint took, and what the daemon said of it. */
function figuresOf(ms: number, figures: CheckpointFigures | undefined): string {
  const frozen = figures?.frozenMs === undefined ? [] : [`program frozen ${duration(figures.frozenMs)}`];
  const size = figures?.bytes === undefined ? [] : [formatMegabytes(figures.bytes)];
  const kept = figures?.kept;
  const files = kept && kept.files > 0 ? [`content of ${kept.files} open file(s) kept: ${formatMegabytes(kept.bytes)} written in ${duration(kept.ms)} while frozen`] : [];
  const said = [...frozen, ...size, ...files];
  return said.length === 0 ? duration(ms) : `${duration(ms)} (${said.join(', ')})`;
}

/** What of the program's node-local files travelled, and what cannot (said at the checkpoint, not at a failed resume). */
function localStateLines(figures: CheckpointFigures | undefined): MachineAction[] {
  const state = figures?.localState;
  if (!state) return [];
  const carried = describeCarried(state);
  const stays = describeStays(state);
  return [
    ...(carried ? [log('info', `node-local files carried with the checkpoint: ${carried}`)] : []),
    ...(stays ? [log('warn', stays)] : []),
  ];
}

/** The files whose content a checkpoint could not keep, named: a crash before the next checkpoint cannot put them back. */
function keptWarnings(figures: CheckpointFigures | undefined): MachineAction[] {
  const kept = figures?.kept;
  if (!kept) return [];
  const over = kept.over.map((path) => log('warn', `${path} is over the bound of content kept per checkpoint (ckpt-daemon --keep-files-max, ${formatMegabytes(kept.max)}): only its checksum is kept, and a resume after a crash refuses to go on if it changed`));
  const unreadable = kept.unreadable.map((path) => log('warn', `${path} is open for writing but you may not read it: its content is not kept, a crash cannot put it back`));
  return [...over, ...unreadable];
}

/**
 * A periodic checkpoint is over (complete, failed or unanswered): the program runs on and the
 * next one is timed; the scheduler's signal that came meanwhile is served now.
 */
function periodicOver(state: Watched, now: number, actions: MachineAction[], request?: CheckpointRequest): Step {
  const running: InPhase<'running'> = { ...state, phase: 'running', request };
  const more: MachineAction[] = [{ type: 'clearTimer', name: 'dump' }, ...actions, ...nextPeriodic(state.config)];
  if (!state.request?.thenStop) return { state: running, actions: more };
  return requestCheckpoint({ ...running, request: undefined }, now, [...more, log('info', 'now the final checkpoint, for the signal that came during the periodic one')]);
}

/** The program's root PID is known (spawned or restored): watch it, serve a pending signal. */
function programKnown(state: InPhase<'starting' | 'resuming'>, pid: number, now: number, actions: MachineAction[]): Step {
  const running: InPhase<'running'> = { phase: 'running', config: state.config, startedAt: state.startedAt, terminating: state.terminating, pid, programGone: false };
  const watched: MachineAction[] = [...actions, { type: 'watchProgram', pid }, ...nextPeriodic(state.config)];
  if (!state.signalPending) return { state: running, actions: watched };
  if (state.config.app) {
    // It cannot have set up its signal handler yet: the save signal would kill it, and its exit
    // would pass for its own end. It has done no work worth saving: stop it, run it again later.
    return after(
      [...watched, { type: 'killProgram' }],
      resubmit(running, now, 'the checkpoint signal came before the program ran: stopped it at once, its saved state (if any) unchanged'),
    );
  }
  return requestCheckpoint(running, now, [...watched, log('info', 'serving the checkpoint signal that arrived before the program was running')]);
}

/** Exit 99 once the job has run long enough for the scheduler to resubmit it. */
function resubmit(state: MachineState, now: number, reason: string): Step {
  const { restarts, maxRestarts, minRuntimeMs } = state.config;
  if (restarts >= maxRestarts) {
    return failWith(
      state,
      ExitCode.MaxRestarts,
      `${reason}, but this run was already resubmitted ${plural(restarts, 'time')} (--max-restarts ` +
        `${maxRestarts}): not exiting 99. The checkpoint is kept: to resume it, submit the ` +
        `job again with a higher --max-restarts.`,
    );
  }
  const remaining = state.startedAt + minRuntimeMs - now;
  if (remaining > 0) {
    return {
      state: { config: state.config, startedAt: state.startedAt, terminating: state.terminating, phase: 'holding' },
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
  return ended(state, [log('info', `${reason}; exit 99 so that the job is resubmitted`)], { type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' });
}

const walltimeLeft = (state: MachineState, now: number): string =>
  state.config.walltimeEndsAt === undefined ? '' : ` (the walltime ends in ${duration(state.config.walltimeEndsAt - now)})`;

/**
 * A dump that takes more than half of what the walltime left when it was asked for is close to
 * being killed with the job: a bigger state, a busier filesystem, and the work since the
 * previous checkpoint is lost. The job cannot read the --checkpoint delay, only the walltime.
 */
function walltimeMargin(config: MachineConfig, requestedAt: number, dumpMs: number): MachineAction[] {
  const { walltimeEndsAt } = config;
  if (walltimeEndsAt === undefined) return [];
  const leftMs = walltimeEndsAt - requestedAt;
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

/** Exit 99 iff the program is gone and a checkpoint completed after our request; else undefined. */
function checkpointDone(state: Watched, now: number): Step | undefined {
  const { request } = state;
  if (!state.programGone || !request?.complete) return undefined;
  const { figures } = request;
  const dumpMs = now - request.at;
  if (state.config.app) return after([{ type: 'clearTimer', name: 'dump' }], resubmit(state, now, `the program saved its state and exited ${duration(dumpMs)} after the signal`));
  const done = resubmit(state, now, `checkpoint complete in ${figuresOf(dumpMs, figures)}, program stopped`);
  return after(
    [{ type: 'clearTimer', name: 'dump' }, { type: 'checkpointKept', periodic: false, figures }, ...localStateLines(figures), ...keptWarnings(figures), ...walltimeMargin(state.config, request.at, dumpMs)],
    done,
  );
}

/** The state with a program (running or checkpointing) and a request out, if that is where the machine is. */
function withRequest(state: MachineState): (Watched & { request: CheckpointRequest }) | undefined {
  return (state.phase === 'running' || state.phase === 'checkpointing') && state.request ? (state as Watched & { request: CheckpointRequest }) : undefined;
}

type Handler<T extends MachineEvent['type']> = (state: MachineState, event: Extract<MachineEvent, { type: T }>, now: number) => Step;

/** One handler per event: what it means in each phase. Phases a handler does not name ignore the event. */
const HANDLERS: { [T in MachineEvent['type']]: Handler<T> } = {
  start(state, event, now) {
    if (state.phase !== 'starting') return unchanged(state);
    if (event.mode === 'fresh') return { state, actions: [{ type: 'spawn' }] };
    // A program that saves itself resumes by being started again: it finds its own state.
    if (state.config.app) return { state, actions: [log('info', 'starting the program again: it resumes from the state it saved (CKPT_RUN_RESUMED=1)'), { type: 'spawn' }] };
    return {
      state: { ...state, phase: 'resuming' },
      actions: [
        { type: 'requestResume', answerBy: answerBy(now, state.config.resumeTimeoutMs) },
        { type: 'setTimer', name: 'resume', ms: state.config.resumeTimeoutMs },
      ],
    };
  },

  spawned(state, event, now) {
    if (state.phase !== 'starting') return unchanged(state);
    const known = programKnown(state, event.pid, now, []);
    if (!state.terminating) return known;
    // A termination signal came while the program was being started: it gets it now.
    return { state: known.state, actions: [...known.actions, { type: 'forwardSignal', signal: state.terminating }] };
  },

  spawnFailed(state, event) {
    if (state.phase !== 'starting') return unchanged(state);
    return ended(state, [log('error', `cannot start the program: ${event.reason}`)], { type: 'exit', code: ExitCode.NotExecutable, outcome: 'failed' });
  },

  restored(state, event, now) {
    if (state.phase !== 'resuming') return unchanged(state);
    return programKnown(state, event.pid, now, [
      { type: 'clearTimer', name: 'resume' },
      log('info', `program restored as PID ${event.pid}, running ${duration(now - state.startedAt)} after the job started`),
    ]);
  },

  restoreFailed(state, event, now) {
    // While running: a lazy restore whose memory never all came in (the daemon killed the tree).
    if (state.phase !== 'resuming' && !(state.phase === 'running' && !state.request)) return unchanged(state);
    const cleared: MachineAction[] = [{ type: 'clearTimer', name: 'resume' }];
    if (event.retryable) return after(cleared, resubmit(state, now, `restore failed (${quoted(event.reason)}); the checkpoint is intact`));
    return after(cleared, failWith(state, ExitCode.RestoreFailed, `restore failed: ${quoted(event.reason)}. The checkpoint is kept; fix the cause and submit again.`));
  },

  checkpointSignal(state, event, now) {
    switch (state.phase) {
      case 'starting':
      case 'resuming':
        return {
          state: { ...state, signalPending: true },
          actions: [log('info', 'checkpoint signal received before the program runs: will checkpoint as soon as it does')],
        };
      case 'checkpointing':
        if (state.request.periodic && !state.request.thenStop) {
          return {
            state: { ...state, request: { ...state.request, thenStop: true } },
            actions: [log('info', `checkpoint signal received${walltimeLeft(state, now)} during a periodic checkpoint: the final one follows it`)],
          };
        }
        return { state, actions: [log('info', 'checkpoint signal ignored: a checkpoint is already in progress')] };
      case 'running':
        return requestCheckpoint(state, now, [log('info', event.selfTimed ?? `checkpoint signal received${walltimeLeft(state, now)}`)]);
      case 'holding':
      case 'ended':
        return { state, actions: [log('debug', 'checkpoint signal ignored: the job is ending')] };
    }
  },

  finalPlanned(state, event, now) {
    // Once the final checkpoint is out (or done), a new plan changes nothing.
    if (state.phase === 'holding' || state.phase === 'ended' || (state.phase === 'checkpointing' && !state.request.periodic)) return unchanged(state);
    // Under Slurm the end comes from the scheduler after the start: the dumps' deadlines then know it too.
    const config = { ...state.config, walltimeEndsAt: state.config.walltimeEndsAt ?? event.walltimeEndsAt, finalWhy: event.why };
    return { state: { ...state, config }, actions: [{ type: 'setTimer', name: 'final', ms: Math.max(0, event.at - now) }] };
  },

  checkpointOk(state, event, now) {
    const asked = withRequest(state);
    if (!asked) return unchanged(state);
    const next = { ...asked, request: { ...asked.request, complete: true, figures: event.figures } };
    const done = checkpointDone(next, now);
    if (done || !next.request.periodic || next.programGone) return done ?? unchanged(next);
    return periodicOver(next, now, [
      log('info', `periodic checkpoint complete in ${figuresOf(now - next.request.at, event.figures)}; the program runs on`),
      ...keptWarnings(event.figures),
      { type: 'checkpointKept', periodic: true, figures: event.figures },
      ...localStateLines(event.figures),
    ]);
  },

  dumpFailed(state, event, now) {
    const asked = withRequest(state);
    if (!asked) return unchanged(state);
    if (asked.programGone) {
      // Nothing runs on and nothing was checkpointed: waiting would last until the walltime.
      const gone = `checkpoint failed: ${quoted(event.reason)}; the program is gone without an exit status, so nothing was saved and nothing runs on`;
      if (asked.terminating) return ended(asked, [log('error', gone)], { type: 'exit', code: 128 + signalNumber(asked.terminating), outcome: 'failed' });
      return after([{ type: 'clearTimer', name: 'dump' }], failWith(asked, ExitCode.ProgramLost, `${gone}; not exiting 99`));
    }
    const what = asked.request.periodic ? 'periodic checkpoint' : 'checkpoint';
    const failed = log(
      'error',
      event.program === 'frozen'
        ? `${what} failed: ${quoted(event.reason)}. The daemon reports the program STILL FROZEN: it does not run; ask the node's admin (ckpt-daemon --check).`
        : asked.request.periodic
          ? `${what} failed: ${quoted(event.reason)}. The program keeps running; the last complete checkpoint stays the one to resume.`
          : `${what} failed: ${quoted(event.reason)}. The program keeps running; the next checkpoint signal tries again.`,
    );
    if (asked.request.periodic) return periodicOver(asked, now, [failed]);
    return { state: { ...asked, phase: 'running', request: undefined }, actions: [{ type: 'clearTimer', name: 'dump' }, failed] };
  },

  daemonSilent(state, event) {
    if (state.phase === 'resuming') return failWith(state, ExitCode.DaemonAbsent, `${event.detail}; giving up the resume (the checkpoint is kept)`);
    if (state.phase !== 'checkpointing') return unchanged(state);
    return {
      // The request stays noted: should the daemon answer after all, its checkpoint counts.
      state: { ...state, phase: 'running' },
      actions: [{ type: 'clearTimer', name: 'dump' }, log('error', `${event.detail}; no checkpoint can be made, the program keeps running`)],
    };
  },

  programExited(state, event) {
    if (state.phase === 'holding' || state.phase === 'ended') return unchanged(state);
    const { app } = state.config;
    const asked = app ? withRequest(state) : undefined;
    if (app && asked && event.exitCode === 128 + signalNumber(app.signal)) {
      // Not its own end, and nothing saved: the run stays resumable from the program's last save.
      return failWith(
        asked,
        event.exitCode,
        `the program died of ${app.signal}, the save signal (exit ${event.exitCode}): it does not catch it, so it saved nothing; ` +
          'not exiting 99. Make it catch the signal (or choose the one it catches with --app-signal); its last saved state, if any, is kept',
      );
    }
    if (state.terminating && event.exitCode === 128 + signalNumber(state.terminating)) {
      // It died of the signal passed on: the job was stopped, the run did not end, and its
      // last checkpoint stays resumable (as when the tree is gone without a status).
      return ended(state, [log('info', `program stopped by ${state.terminating}`)], { type: 'exit', code: event.exitCode, outcome: 'failed' });
    }
    // After the save signal, an exit that app-link.ts did not take for "saved" is the program's own end.
    const notSaved = asked ? ' after the save signal: not the agreed code (--app-saved-code), so this is its own end' : '';
    return ended(state, [log('info', `program exited with code ${event.exitCode}${notSaved}`)], {
      type: 'exit',
      code: event.exitCode,
      outcome: 'finished',
      exitCode: event.exitCode,
    });
  },

  programGone(state, _event, now) {
    if ((state.phase !== 'running' && state.phase !== 'checkpointing') || state.programGone) return unchanged(state);
    const next: Watched = { ...state, programGone: true };
    if (next.request && next.config.app) {
      // The program's save is its exit status: gone without one, it was killed and saved nothing.
      return checkpointDone(next, now) ?? failWith(next, ExitCode.ProgramLost, 'the program disappeared without an exit status after the save signal (killed from outside?); not exiting 99');
    }
    if (next.request) {
      // A request past --dump-timeout gets the bound once more, now that the program is gone.
      const bound: MachineAction[] = next.request.late ? [{ type: 'setTimer', name: 'dump', ms: next.config.dumpTimeoutMs }] : [];
      return checkpointDone(next, now) ?? { state: next, actions: [log('debug', 'program stopped; waiting for the daemon to confirm the checkpoint'), ...bound] };
    }
    if (state.terminating) return ended(next, [], { type: 'exit', code: 128 + signalNumber(state.terminating), outcome: 'failed' });
    return failWith(next, ExitCode.ProgramLost, 'the program disappeared without an exit status and no checkpoint was made (killed from outside?); not exiting 99');
  },

  timer(state, event, now) {
    switch (event.name) {
      case 'interval':
        if (state.phase === 'checkpointing' || (state.phase === 'running' && state.request)) {
          return { state, actions: [log('debug', 'periodic checkpoint skipped: a request is still out'), ...nextPeriodic(state.config)] };
        }
        if (state.phase !== 'running') return unchanged(state);
        if (state.config.app) return periodicSave(state, state.config.app, now);
        return periodicIfDaemonCan(state, event.periodic ?? { ok: true }, now);
      case 'minRuntime':
        if (state.phase !== 'holding') return unchanged(state);
        return ended(state, [log('info', 'exit 99 so that the job is resubmitted')], { type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' });
      case 'resume':
        if (state.phase !== 'resuming') return unchanged(state);
        return failWith(
          state,
          ExitCode.ResumeTimeout,
          `resume timed out after ${duration(state.config.resumeTimeoutMs)}: no checkpoint/pidfile ` +
            'from the daemon (is ckpt-daemon running on this node? see --resume-timeout)',
        );
      case 'final':
        return HANDLERS.checkpointSignal(state, { type: 'checkpointSignal', selfTimed: state.config.finalWhy }, now);
      case 'dump':
        return state.config.app ? saveTimedOut(state, state.config.app, now) : dumpTimedOut(state, now, event.programState);
    }
  },

  terminate(state, event, now) {
    if (state.phase === 'holding' || state.phase === 'ended') return unchanged(state);
    if (event.preempted && !state.terminating && (state.phase === 'running' || state.phase === 'checkpointing')) {
      // The scheduler ends a preempted job (Slurm: KillWait before SIGKILL, then its own requeue):
      // the program is checkpointed, not stopped; a second signal is passed on to it.
      const checkpoint = HANDLERS.checkpointSignal(state, { type: 'checkpointSignal' }, now);
      const said = log('warn', `${event.signal} received from the scheduler, which ends this job for a preemption: checkpointing the program instead of stopping it`);
      return { state: checkpoint.state, actions: [said, ...checkpoint.actions] };
    }
    if (!state.terminating && state.phase === 'starting') {
      // The program is being started: leaving now would leave it running with no one to watch it.
      return {
        state: { ...state, terminating: event.signal },
        actions: [log('warn', `${event.signal} received while the program starts: passing it on as soon as it runs (send it again to leave at once)`)],
      };
    }
    if (state.terminating || state.phase === 'starting' || state.phase === 'resuming') {
      return ended(state, [log('warn', `${event.signal} received; exiting now`)], { type: 'exit', code: 128 + signalNumber(event.signal), outcome: 'failed' });
    }
    return {
      state: { ...state, terminating: event.signal },
      actions: [log('warn', `${event.signal} received: passing it to the program (send it again to leave at once)`), { type: 'forwardSignal', signal: event.signal }],
    };
  },
};

/** The program did not exit within its bound after the save signal: killed, never a 99. */
function saveTimedOut(state: MachineState, app: AppEngineConfig, now: number): Step {
  const asked = withRequest(state);
  if (!asked) return unchanged(state);
  const { by } = appGrace(asked.config, app, asked.request.at);
  return after(
    [{ type: 'killProgram' }],
    failWith(
      asked,
      ExitCode.AppTimeout,
      `the program did not exit within ${duration(now - asked.request.at)} of ${app.signal} (bound: ${by}): killed; not exiting 99. ` +
        `Does it catch ${app.signal} and exit with the agreed code? Its last saved state, if any, is kept; give it more time with --app-grace and the scheduler's checkpoint lead`,
    ),
  );
}

/** --dump-timeout passed with the request unanswered; PROGRAMSTATE is what /proc says of the program then. */
function dumpTimedOut(state: MachineState, now: number, programState: string | undefined): Step {
  const asked = withRequest(state);
  if (!asked) return unchanged(state);
  if (asked.programGone) {
    return failWith(
      asked,
      ExitCode.ProgramLost,
      `the program stopped but the daemon did not confirm the checkpoint within ` +
        `${duration(asked.config.dumpTimeoutMs)} (no new checkpoint_ok); not exiting 99`,
    );
  }
  const warning = log(
    'warn',
    `the daemon has not answered the dump request after ${duration(asked.config.dumpTimeoutMs)} ` +
      `(--dump-timeout; ckpt-daemon answers before it, so this node's daemon is another one or stuck): ${programNow(programState)}`,
  );
  // A late checkpoint_ok still counts: the request stays noted, as late.
  const late = { ...asked.request, late: true };
  if (asked.request.periodic) return periodicOver(asked, now, [warning], late);
  return { state: { ...asked, phase: 'running', request: late }, actions: [warning] };
}

export function step(state: MachineState, event: MachineEvent, now: number): Step {
  return (HANDLERS[event.type] as Handler<MachineEvent['type']>)(state, event, now);
}
