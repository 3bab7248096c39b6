import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

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
  /** Output that a resume rolled back (launcher/output-rollback.ts), kept rather than lost. */
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
  /** --engine app: why the program was last asked to save (walltime, manual), written before the signal. */
  saveReason: string;
}

export const RUNS_FOLDER = '.ckpt-run';

/** How checkpoint_ok starts when the program saved itself (--engine app), not a daemon's dump. */
export const PROGRAM_SAVED_MARK = 'saved by the program';

/** A lazy restore's figures (pages_in): until every page was in, and the memory brought in. */
export interface PagesIn {
  ms: number;
  bytes: number;
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
    saveReason: join(dir, 'reason'),
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
