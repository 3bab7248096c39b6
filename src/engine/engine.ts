/**
 * How a checkpoint is made, as ckpt-daemon drives it: dump a process tree into a folder of
 * images, and later restore it from them. Two engines: CRIU (the real thing, root only) and
 * "restart" (no CRIU: records the command line and starts it again; for the local dry run),
 * listed in daemon-registry.ts, each built as its folder's DaemonEngine says.
 */
import type { Logger } from '../log/logger.js';
import type { DumpRate } from '../protocol/heartbeat.js';
import type { LocalState } from '../protocol/local-state.js';
import type { KeptIndex } from '../protocol/kept-files.js';
import type { Requester } from '../protocol/spool-request.js';
import type { PagesIn } from '../protocol/run-dir.js';

export interface DumpTarget {
  /** Root of the tree to dump. */
  pid: number;
  /** An empty folder that only the daemon can write; the engine writes its images and log here. */
  imagesDir: string;
  /** Whom the images are for: the frozen tree is checked against them before the images count. */
  requester: Requester;
  /** Epoch ms by which the job needs an answer (engine/criu.ts kills a criu still running then). */
  deadline?: number;
  /** Leave the tree running after the dump (a periodic checkpoint) instead of stopping it. */
  leaveRunning?: boolean;
  /**
   * The run folder as the user reaches it: where the content of the files open for writing is
   * kept (protocol/kept-files.ts); never node-local state to carry, even where it is under /tmp
   * (a test, a job run from a local folder): the next job must find it there anyway.
   */
  runDir?: string;
  /**
   * Epoch ms: the top-level entries of the node-local folders its user made or changed since
   * then travel with the images too, not only what the tree holds (protocol/local-state.ts:
   * createdSince). Unset: only those.
   */
  createdSince?: number;
}

/** What an engine can tell of a dump it made. */
export interface DumpFigures {
  /** How long the tree was frozen, where the engine measures it. */
  frozenMs?: number;
  /** What of the node-local state travels with the images, and what stays (criu). */
  localState?: LocalState;
  /** The content of the files open for writing, kept while frozen (protocol/kept-files.ts). */
  kept?: KeptIndex;
}

export interface RestoreTarget {
  /** The images of a completed dump. */
  imagesDir: string;
  /** A private folder of the daemon for the engine's own files (log, pidfile, statistics). */
  scratchDir: string;
  requester: Requester;
  /**
   * The new job's cgroups: an engine that can (criu) puts the tree there before it runs, so that
   * nothing it forks starts outside them, and leaves where the tree was before in
   * scratchDir/RESTORED_CGROUPS_FILE (the lines of /proc/PID/cgroup).
   */
  jobCgroups?: string[];
  /** Epoch ms by which the job needs an answer. */
  deadline?: number;
}

export const RESTORED_CGROUPS_FILE = 'restored-cgroups';

/** A restored tree: it runs; a lazy restore is still bringing its memory in. */
export interface RestoredTree {
  /** The PID of its root. */
  pid: number;
  /**
   * A lazy restore (engine/lazy-pages.ts): resolves once every page is in, rejects (with the
   * tree killed) when the transfer failed. The images must stay as they are until then.
   */
  pagesIn?: Promise<PagesIn>;
  /** The node-local state put back before the restore (criu). */
  localState?: LocalState;
}

export interface CheckpointEngine {
  readonly name: string;
  /**
   * True when the images hold no memory (the restart engine's: a command line): a dump then
   * needs no room for the tree's memory. Unset: it does, as CRIU's.
   */
  readonly keepsNoMemory?: boolean;
  /** The most node-local state a dump carries in its images, bytes (criu's archive); unset: none. */
  readonly localStateLimit?: number;
  /** Dumps the tree and stops it (unless leaveRunning); throws EngineError and leaves it running on failure. */
  dump(target: DumpTarget): Promise<DumpFigures>;
  /** Restores the tree, detached from the daemon; resolves once it runs. */
  restore(target: RestoreTarget): Promise<RestoredTree>;
}

/**
 * An engine as ckpt-daemon and the dry run build it: what daemon-registry.ts lists, one per
 * engine folder. SETTINGS: what it needs of ckpt-daemon's command line (criu's options for
 * criu; the call in cli/ckpt-daemon.ts does not type-check until the daemon has them all).
 */
export interface DaemonEngine<Settings = unknown> {
  /** How the dry run names it when it cannot work here ("real CRIU is not usable"). */
  readonly title: string;
  /** What ckpt-daemon --engine's help says of it, where its name is not enough. */
  readonly about?: string;
  /** What a dry run with it does not show: said when the dry run falls back to it. */
  readonly limits?: string;
  /** The engine the daemon runs, and the dump rate it measured where it does; a CliError (DaemonExit) says why it cannot run here. */
  forDaemon(settings: Settings, logger: Logger): Promise<{ engine: CheckpointEngine; dumpRate?: DumpRate }>;
  /** The engine the dry run embeds (CRIU: the criu command, simulate --criu), or why it cannot work here. */
  forDryRun(criu: string): Promise<{ engine: CheckpointEngine } | { problem: string }>;
}

/** How a failed dump left the program, as the engine saw it afterwards. */
export type ProgramAfterFailure = 'running' | 'frozen' | 'gone';

/** A failed dump or restore: what the job side is told (src/protocol/daemon-report.ts). */
export class EngineError extends Error {
  constructor(
    readonly reason: string,
    /** Another try (later, or on another node) may succeed: e.g. a PID in use on restore. */
    readonly retryable: boolean,
    /** The end of the engine's log, for the user who wants the details. */
    readonly log?: string,
    /** Said when a dump was cut short: the job then tells the truth about its program. */
    readonly program?: ProgramAfterFailure,
    /**
     * The root of a tree to kill once the job has the report (a lazy restore whose memory
     * transfer failed): killed first, the job would see its program vanish with no reason.
     */
    readonly thenKill?: number,
  ) {
    super(reason);
  }
}
