/**
 * The state machine's vocabulary (machine.ts): its configuration, state by phase, events and
 * actions, and the few helpers every phase uses to build a step. Pure, like the machine.
 */
import { constants } from 'node:os';
import type { LocalState } from '../protocol/local-state.js';
import type { KeptFigures } from '../protocol/run-dir.js';
import type { ExitAnswers, PeriodicAnswer } from '../engine/link.js';

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
  /** Where the link's answer is the program's own exit after a signal (CheckpointLink.exitAnswers): a resume is then a new start. */
  exitAnswers?: ExitAnswers;
  /** Why the final checkpoint is made when its planned time comes (final-plan.ts), once planned. */
  finalWhy?: string;
}

/** How long a program that saves itself may take to exit when neither its engine's grace nor a walltime says. */
export const DEFAULT_SAVE_GRACE_MS = 60_000;

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
export type InPhase<P extends Phase> = Extract<MachineState, { phase: P }>;
export type Watched = InPhase<'running' | 'checkpointing'>;

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
  /** SIGKILL to the program's process group (a program that did not save in time; a signal before it ran, where it saves itself). */
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
export const duration = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 100) / 10} s`);

export const log = (level: 'info' | 'warn' | 'error' | 'debug', message: string): MachineAction => ({ type: 'log', level, message });

export const signalNumber = (signal: NodeJS.Signals): number => constants.signals[signal];

export const unchanged = (state: MachineState): Step => ({ state, actions: [] });

export function ended(state: MachineState, actions: MachineAction[], exit: MachineAction): Step {
  return { state: { config: state.config, startedAt: state.startedAt, terminating: state.terminating, phase: 'ended' }, actions: [...actions, exit] };
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

export function failWith(state: MachineState, code: number, message: string): Step {
  return ended(state, [log('error', message)], { type: 'exit', code, outcome: 'failed' });
}

/** Puts ACTIONS before those of STEP. */
export const after = (actions: MachineAction[], step: Step): Step => ({ state: step.state, actions: [...actions, ...step.actions] });

/** The state with a program (running or checkpointing) and a request out, if that is where the machine is. */
export function withRequest(state: MachineState): (Watched & { request: CheckpointRequest }) | undefined {
  return (state.phase === 'running' || state.phase === 'checkpointing') && state.request ? (state as Watched & { request: CheckpointRequest }) : undefined;
}

export type Handler<T extends MachineEvent['type']> = (state: MachineState, event: Extract<MachineEvent, { type: T }>, now: number) => Step;
