/**
 * The job side of an engine: the one interface the supervisor (launcher/supervisor.ts) talks
 * through, whatever makes the checkpoint (CheckpointLink), and the engine as its folder declares
 * it for registry.ts (JobEngine). The daemon side's is CheckpointEngine (engine.ts).
 */
import type { DaemonReport } from '../protocol/daemon-report.js';
import type { DumpRate } from '../protocol/heartbeat.js';
import type { CheckpointStats, RunDirPaths } from '../protocol/run-dir.js';
import type { RunState, StopReason } from '../state/run-state.js';
import type { CommonOptions, EngineOptions, OptionValues } from './options.js';

/** Whether the checkpoint link can make a checkpoint that leaves the program running; ASKAGAIN: it may later (a daemon's heartbeat). */
export type PeriodicAnswer = { ok: true } | { ok: false; why: string; askAgain: boolean };

/** An engine whose answer is the program's own exit after a signal (app/: --engine app). */
export interface ExitAnswers {
  /** The signal that asks the program to save and exit (app: --app-signal). */
  signal: NodeJS.Signals;
  /** How long it may take (app: --app-grace); undefined: until the walltime's bound, or DEFAULT_SAVE_GRACE_MS without a walltime. */
  graceMs?: number;
  /** Asks for a save after which the program runs on (--interval; app: --app-periodic-signal). */
  periodicSignal?: NodeJS.Signals;
  /** The engine's options that the machine's messages send the user to, by name: the machine knows no engine's. */
  options: ExitAnswerOptions;
}

/** The options, as the user types them, that set what ExitAnswers is made of. */
export interface ExitAnswerOptions {
  /** The save signal (app: "--app-signal"). */
  signal: string;
  /** How long the program may take (app: "--app-grace"). */
  grace: string;
  /** The exit code that means "saved" (app: "--app-saved-code"). */
  savedCode: string;
}

/** What the run directory and /proc say at one look (undefined: absent, or not complete yet). */
export interface RunFiles {
  /** The shim's exit_status, read after programAlive: a status written before the end is seen. */
  exitStatus?: number;
  restoreFailed?: DaemonReport;
  /** The daemon's pidfile of a restored tree. */
  restoredPid?: number;
  dumpFailed?: DaemonReport;
  /** checkpoint_ok's identity now, and when the last checkpoint request went out. */
  checkpointOk?: string;
  checkpointOkAtRequest?: string;
  /** What the daemon said of its last checkpoint (checkpoint_stats). */
  checkpointStats?: CheckpointStats;
  /** Whether the watched program lives; undefined while no program is watched. */
  programAlive?: boolean;
  /** This job resumed a checkpoint. */
  resumedJob?: boolean;
}

/**
 * How the supervisor asks for a checkpoint and a restore: the daemon link (daemon-link/: CRIU or
 * restart, run by ckpt-daemon), or the application-level engine's (app/: signal the program,
 * which saves its own state and exits with an agreed code). registry.ts names them.
 */
export interface CheckpointLink {
  /**
   * ANSWERBY: epoch ms by which the job needs the answer (the daemon bounds its criu by it);
   * LEAVERUNNING: a periodic checkpoint, after which the program runs on.
   */
  requestCheckpoint(pid: number, answerBy: number, leaveRunning: boolean): void;
  /** Whether periodic checkpoints can be asked for now; else why not, for the job's log, and whether that may change. */
  periodic(): PeriodicAnswer;
  /**
   * What the machine must know of this engine's answers: set where the answer is the program's
   * own exit after a signal (and a resume is a new start); unset, a daemon answers in the run
   * directory and restores the program.
   */
  readonly exitAnswers?: ExitAnswers;
  /** Asks for the restore of the run's checkpoint; never asked of a link with exitAnswers (the machine starts the program again). */
  requestResume(answerBy: number): void;
  /** FILES as the daemon protocol shows them: where the answer is the program's own exit, once published (a new checkpoint_ok, no exit status). */
  answer(files: RunFiles): RunFiles;
  /** The scheduler's word on why the job stops, once known: for a program that is told why it is asked to save. */
  tellReason(reason: StopReason): void;
  /** How fast the node's daemon says it dumped its canary at start (its heartbeat), for the self-timed plan; undefined where it says nothing of it. */
  daemonDumpRate(): DumpRate | undefined;
  /** checkpoint_ok's identity when the last checkpoint request went out: a different one is new. */
  readonly checkpointOkAtRequest: string | undefined;
  /** Ends the link; a request still unread is taken back (it would be served for nobody). */
  close(): void;
}


/** All a link may be built from: the job's settings, and the supervisor's callbacks. */
export interface LinkContext {
  spoolDir: string;
  jobId: string;
  paths: RunDirPaths;
  /** Whether to watch the daemon's heartbeat while a request is out (off for daemons without one). */
  daemonCheck: boolean;
  /** How long a request may wait unanswered, without a live heartbeat, before we say so. */
  graceMs: number;
  /** The checkpoint a resume is for (checkpoint_ok's identity when the job rolled its files back to it). */
  resumeFrom?: string;
  /** Whether the supervisor still waits on the daemon: the heartbeat is looked at only then. */
  awaiting(): boolean;
  /** The daemon does not serve the request: DETAIL says why. */
  silent(detail: string): void;
  /** Why the program is asked to save, from what the job knows at once. */
  reasonNow(): StopReason;
}

/**
 * One of ckpt-run's engines, as its folder declares it and registry.ts lists it. SETTINGS: what
 * it makes of its own OPTIONS; the launcher never sees them (registry.ts: ChosenEngine binds
 * them in). Methods, not function properties: an engine of its own settings is then one of the
 * registry's JobEngines (TypeScript compares method parameters both ways).
 */
export interface JobEngine<Settings = unknown, Options extends EngineOptions = EngineOptions> {
  /** What makes the checkpoints, in a few words for --engine's help ("the program saves itself on a signal"). */
  readonly summary: string;
  /** Its lines in ckpt-run --help's "Engines (--engine)", each indented, the last ended. */
  readonly help: string;
  /** Its own options (options.ts): cli registers them, and refuses them with another engine. */
  readonly options: Options;
  /** Its settings from its options' values and the job's; a CliError (exit 2) when they do not go together. */
  settings(values: OptionValues<Options>, job: CommonOptions): Settings;
  link(settings: Settings, context: LinkContext): CheckpointLink;
  /** Its requests go to the node's daemon through the spool (else no spool is needed, nor a PID namespace: the program is started again). */
  readonly usesDaemon: boolean;
  /** The program's environment under this engine, from the job's (ENV); RESUMED: this job resumes the run. */
  programEnvironment(env: NodeJS.ProcessEnv, paths: RunDirPaths, state: RunState, resumed: boolean): NodeJS.ProcessEnv;
}
