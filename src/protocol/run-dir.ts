import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalState } from './local-state.js';

/**
 * The files of one run, all inside its run directory (the DIR of the spool requests).
 * The first three are the public protocol; the others are ckpt-run's and ckpt-daemon's own.
 */
export interface RunDirPaths {
  dir: string;
  /** CRIU images of the last complete checkpoint. */
  images: string;
  /** The checkpoint before it, kept by the daemon until its next dump; nothing resumes it. */
  oldImages: string;
  /** Created by the daemon once a dump is complete; replaced (new inode) by every new dump. */
  checkpointOk: string;
  /** Written by the daemon after a restore: the restored root's PID. */
  pidfile: string;
  /** ckpt-daemon's reason when a dump failed (the program keeps running). */
  dumpFailed: string;
  /** ckpt-daemon's reason when a restore failed. */
  restoreFailed: string;
  /** Written by the shim at the root of the program's tree: the program's exit status. */
  exitStatus: string;
  /** The program's output files, opened O_APPEND by the tree and relayed by ckpt-run. */
  stdoutLog: string;
  stderrLog: string;
  /** Output that a resume rolled back (launcher/file-rollback.ts), kept rather than lost. */
  stdoutRolledBack: string;
  stderrRolledBack: string;
  /** ckpt-run's record of the run (see src/state/run-state.ts). */
  state: string;
  /**
   * Epoch ms by which the job needs the daemon's answer to its request (walltime, --dump-timeout):
   * ckpt-daemon bounds criu by it. An extension of the protocol: other daemons ignore it.
   */
  answerBy: string;
  /**
   * Written by ckpt-daemon once every page of a lazy restore is in (the program ran before):
   * {"ms": since the request, "bytes": the memory brought in}. ckpt-daemon's own extension.
   */
  pagesIn: string;
  /**
   * Written by ckpt-run before a checkpoint request: "leave-running\n" asks for a dump that leaves
   * the program running (--interval); absent, the dump stops it. ckpt-daemon's own extension,
   * sent only to a daemon whose heartbeat says it knows it (protocol/heartbeat.ts).
   */
  checkpointMode: string;
  /** Written by ckpt-daemon before checkpoint_ok: the checkpoint's figures (CheckpointStats, one JSON line). */
  checkpointStats: string;
  /**
   * Written by ckpt-run before a resume request: the identity of the checkpoint_ok whose files it
   * rolled back (protocol/checkpoint-identity.ts). ckpt-daemon restores only that checkpoint: a
   * dump of a killed job that completed meanwhile would come back with files cut for another.
   */
  resumeFrom: string;
  /** --engine app: why the program was last asked to save (walltime, manual), written before the signal. */
  saveReason: string;
  /**
   * Written by ckpt-run when it starts the program afresh (a resume leaves it): epoch ms. The
   * node-local entries its user made since then travel with each checkpoint
   * (protocol/local-state.ts). ckpt-daemon's own extension: without it, only what the tree holds.
   */
  programStarted: string;
}

export const RUNS_FOLDER = '.ckpt-run';

/** How checkpoint_ok starts when the program saved itself (--engine app), not a daemon's dump. */
export const PROGRAM_SAVED_MARK = 'saved by the program';

/** A lazy restore's figures (pages_in): until every page was in, and the memory brought in. */
export interface PagesIn {
  ms: number;
  bytes: number;
  /** The daemon's own: the program ended on its own before every page was in (nothing is published). */
  endedFirst?: boolean;
}

/** pages_in as ckpt-daemon writes it (one JSON line), or undefined for anything else. */
export function parsePagesIn(text: string | undefined): PagesIn | undefined {
  if (text === undefined || !text.endsWith('\n')) return undefined;
  try {
    const { ms, bytes } = JSON.parse(text) as Partial<PagesIn>;
    return typeof ms === 'number' && typeof bytes === 'number' ? { ms, bytes } : undefined;
  } catch {
    return undefined;
  }
}

/** What checkpoint_mode says for a dump that leaves the program running. */
export const LEAVE_RUNNING = 'leave-running';

/** A complete checkpoint's figures, as ckpt-daemon tells them (checkpoint_stats). */
export interface CheckpointStats {
  /** The images' size. */
  bytes: number;
  /** How long the program was frozen (criu's own count), where the engine knows it. */
  frozenMs?: number;
  /** The program ran on after the dump (a periodic checkpoint). */
  leftRunning: boolean;
  /** The program's node-local files: what travels with the images, what stays (protocol/local-state.ts). */
  localState?: LocalState;
  /** The content of the files open for writing (protocol/kept-files.ts), where the daemon keeps it. */
  kept?: KeptFigures;
}

/** What keeping the content of the files open for writing cost one checkpoint, and what it left out. */
export interface KeptFigures {
  /** Files kept. */
  files: number;
  /** Bytes written: changed blocks and new bases. */
  bytes: number;
  /** The program frozen meanwhile. */
  ms: number;
  /** Files past the bound (only a checksum kept), and the bound. */
  over: string[];
  max: number;
  /** Files the user may not read. */
  unreadable: string[];
}

export function formatCheckpointStats(stats: CheckpointStats): string {
  return `${JSON.stringify(stats)}\n`;
}

function validKept(kept: Partial<KeptFigures> | undefined): kept is KeptFigures {
  const names = (list: unknown): boolean => Array.isArray(list) && list.every((name) => typeof name === 'string');
  return (
    typeof kept === 'object' && kept !== null && typeof kept.files === 'number' && typeof kept.bytes === 'number' &&
    typeof kept.ms === 'number' && typeof kept.max === 'number' && names(kept.over) && names(kept.unreadable)
  );
}

/** checkpoint_stats as ckpt-daemon writes it, or undefined for anything else. */
export function parseCheckpointStats(text: string | undefined): CheckpointStats | undefined {
  if (text === undefined || !text.endsWith('\n')) return undefined;
  try {
    const { bytes, frozenMs, leftRunning, localState, kept } = JSON.parse(text) as Partial<CheckpointStats>;
    if (typeof bytes !== 'number' || typeof leftRunning !== 'boolean') return undefined;
    const local = Array.isArray(localState?.carried) && Array.isArray(localState?.stays) && Array.isArray(localState?.sockets) ? { localState } : {};
    return { bytes, leftRunning, ...(typeof frozenMs === 'number' ? { frozenMs } : {}), ...local, ...(validKept(kept) ? { kept } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * In a CRIU images folder: the regular files the tree held open for writing, with their sizes,
 * recorded by ckpt-daemon's action script while the tree was frozen (protocol/open-files.ts).
 */
export const OPEN_FILES_IMAGE = 'ckpt-open-files';

/** Older checkpoints kept by --keep: `checkpoint.gen-<when it was the current one until>`. */
export const GENERATION_PREFIX = 'checkpoint.gen-';

/** The daemon dumps into `checkpoint.new-XXXXXX` (root's, mode 0700) and renames it once complete. */
export const PARTIAL_IMAGES_PREFIX = 'checkpoint.new-';

export function runDirPaths(dir: string): RunDirPaths {
  const images = join(dir, 'checkpoint');
  return {
    dir,
    images,
    oldImages: `${images}.old`,
    checkpointOk: join(dir, 'checkpoint_ok'),
    pidfile: join(images, 'pidfile'),
    dumpFailed: join(dir, 'dump_failed'),
    restoreFailed: join(dir, 'restore_failed'),
    exitStatus: join(dir, 'exit_status'),
    stdoutLog: join(dir, 'stdout.log'),
    stderrLog: join(dir, 'stderr.log'),
    stdoutRolledBack: join(dir, 'stdout.rolled-back.log'),
    stderrRolledBack: join(dir, 'stderr.rolled-back.log'),
    state: join(dir, 'state.json'),
    answerBy: join(dir, 'answer_by'),
    pagesIn: join(dir, 'pages_in'),
    checkpointMode: join(dir, 'checkpoint_mode'),
    checkpointStats: join(dir, 'checkpoint_stats'),
    resumeFrom: join(dir, 'resume_from'),
    saveReason: join(dir, 'reason'),
    programStarted: join(dir, 'program_started'),
  };
}

/** Where a run lives: one folder per run id under the working directory's `.ckpt-run/`. */
export function runDirFor(workdir: string, runId: string): string {
  return join(workdir, RUNS_FOLDER, runId);
}

/** The size of an images folder (CRIU's files and the daemon's, no subfolder), complete or not. */
export function imagesBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(join(dir, entry.name)).size, 0);
}
