/**
 * How a checkpoint is made, as ckpt-daemon drives it: dump a process tree into a folder of
 * images, and later restore it from them. Two engines: CRIU (the real thing, root only) and
 * "restart" (no CRIU: records the command line and starts it again; for the local dry run).
 */
import type { Requester } from '../protocol/spool-request.js';

export interface DumpTarget {
  /** Root of the tree to dump. */
  pid: number;
  /** An empty folder that only the daemon can write; the engine writes its images and log here. */
  imagesDir: string;
  /** Whom the images are for: the frozen tree is checked against them before the images count. */
  requester: Requester;
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
}

export const RESTORED_CGROUPS_FILE = 'restored-cgroups';

export interface CheckpointEngine {
  readonly name: string;
  /** Dumps the tree and stops it; throws EngineError and leaves it running on failure. */
  dump(target: DumpTarget): Promise<void>;
  /** Restores the tree, detached from the daemon; resolves to the PID of its root. */
  restore(target: RestoreTarget): Promise<number>;
}

/** A failed dump or restore: what the job side is told (src/protocol/daemon-report.ts). */
export class EngineError extends Error {
  constructor(
    readonly reason: string,
    /** Another try (later, or on another node) may succeed: e.g. a PID in use on restore. */
    readonly retryable: boolean,
    /** The end of the engine's log, for the user who wants the details. */
    readonly log?: string,
  ) {
    super(reason);
  }
}
