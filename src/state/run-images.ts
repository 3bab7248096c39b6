/**
 * The disk a run folder takes, and which of its checkpoint images no job will ever resume: a
 * finished run's (the next job starts a new run) and those of a run without checkpoint_ok (its
 * next job starts it from the beginning). The images of a run that may still resume are never
 * touched, nor those of a run whose job may be running now: a dump in progress renames its
 * images into place before it writes checkpoint_ok.
 * The daemon hands every completed dump over to the user (daemon/owned-files.ts), so the user's
 * own rm removes it; only a dump that never completed stays root's (see removeImages).
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { formatMegabytes } from '../base/sizes.js';
import { KEPT_FILES_FOLDER } from '../protocol/kept-files.js';
import { GENERATION_PREFIX, imagesBytes, PARTIAL_IMAGES_PREFIX, RUNS_FOLDER, type RunDirPaths } from '../protocol/run-dir.js';
import { loadRunState, type RunState } from './run-state.js';

export interface DiskUse {
  /** The whole run folder: images, output logs, state. */
  total: number;
  /** Its checkpoint images (checkpoint/, checkpoint.old/, older ones kept by --keep, unfinished dumps). */
  images: number;
}

/** The run ids of WORKDIR's run folders, sorted. */
export function runIdsIn(workdir: string): string[] {
  try {
    return readdirSync(join(workdir, RUNS_FOLDER), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
  } catch {
    return []; // no run folder yet
  }
}

/** A folder's size, or 0 when it cannot be read (an unfinished dump is root's, mode 0700). */
function bytesOf(dir: string): number {
  try {
    return imagesBytes(dir);
  } catch {
    return 0;
  }
}

/** The image folders present in the run folder. */
export function imageFolders(paths: RunDirPaths): string[] {
  const named = [basename(paths.images), basename(paths.oldImages)];
  return readdirSync(paths.dir)
    .filter((name) => named.includes(name) || name.startsWith(PARTIAL_IMAGES_PREFIX) || name.startsWith(GENERATION_PREFIX))
    .sort()
    .map((name) => join(paths.dir, name));
}

/**
 * After a complete checkpoint (the daemon moved the one before to checkpoint.old): the run folder
 * keeps KEEP checkpoints, the current one included; the older ones kept become
 * checkpoint.gen-<time> (sortable), the oldest go. Returns a line per folder it could not handle.
 * The daemon hands every complete dump over to the user: the user's job may move and remove them.
 */
export function keepGenerations(paths: RunDirPaths, keep: number, now = new Date()): string[] {
  const problems: string[] = [];
  const remove = (dir: string): void => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      problems.push(`cannot remove the older checkpoint ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  if (keep > 1 && existsSync(paths.oldImages)) {
    try {
      renameSync(paths.oldImages, join(paths.dir, `${GENERATION_PREFIX}${now.toISOString().replace(/[:.]/g, '-')}`));
    } catch (error) {
      problems.push(`cannot keep the older checkpoint ${paths.oldImages}: ${(error as Error).message}`);
    }
  } else if (existsSync(paths.oldImages)) {
    remove(paths.oldImages);
  }
  const generations = readdirSync(paths.dir).filter((name) => name.startsWith(GENERATION_PREFIX)).sort();
  for (const name of generations.slice(0, Math.max(0, generations.length - (keep - 1)))) remove(join(paths.dir, name));
  return problems;
}

export function diskUse(paths: RunDirPaths): DiskUse {
  const images = imageFolders(paths).reduce((sum, dir) => sum + bytesOf(dir), 0);
  return { total: bytesOf(paths.dir) + images, images };
}

export type ImagesVerdict = { removable: boolean; why: string };

/** Whether any job may still need the run's images; STATE undefined: the state file is unusable. */
export function imagesVerdict(state: RunState | undefined, hasCheckpointOk: boolean): ImagesVerdict {
  if (!state) return { removable: false, why: 'its state file is unusable: ckpt-run does not guess (see ckpt-run status)' };
  if (state.status === 'finished') return { removable: true, why: `finished, exit code ${state.exitCode}` };
  if (state.history.at(-1)?.endedAt === undefined) {
    return { removable: false, why: 'a job may be running it (its last job recorded no end)' };
  }
  if (hasCheckpointOk) return { removable: false, why: 'may still resume: the next job resumes its last checkpoint' };
  return { removable: true, why: 'failed: no complete checkpoint, the next job starts it from the beginning' };
}

/**
 * Removes the run's image folders; what it removed and freed, and one line per folder it could
 * not remove. PARTIAL: also the dumps that have not completed (`ckpt-run clean`: left by a dump
 * that never will); a job leaves them to the daemon, which may be writing one right now (a
 * program that ended during a dump) and removes it itself when the dump fails.
 */
export function removeImages(paths: RunDirPaths, partial = true): { removed: string[]; freed: number; problems: string[] } {
  let freed = 0;
  const removed: string[] = [];
  const problems: string[] = [];
  // With them, the bases of the files' content kept with the checkpoints (protocol/kept-files.ts): of use only with them.
  const bases = join(paths.dir, KEPT_FILES_FOLDER);
  const folders = imageFolders(paths).filter((folder) => partial || !basename(folder).startsWith(PARTIAL_IMAGES_PREFIX));
  for (const dir of existsSync(bases) ? [...folders, bases] : folders) {
    const bytes = bytesOf(dir);
    try {
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
      freed += bytes;
    } catch (error) {
      const partial = basename(dir).startsWith(PARTIAL_IMAGES_PREFIX)
        ? " (a dump that never completed, still root's: the node daemon removes it at its next request for this run folder, or ask the node's admin)"
        : '';
      problems.push(`cannot remove ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}${partial}`);
    }
  }
  return { removed, freed, problems };
}

/**
 * A resumed job whose program ended this soon, with a code that says it failed, may have been
 * harmed by the restore (a file not as it left it: SQLite's "database disk image is malformed"
 * came 0.05 s after one). Failed: exit code 1 (an uncaught error in Python, Java and most
 * runtimes) or a signal (128+N: an abort, a segfault). Other codes are taken as the program's
 * own word (the test programs end with 7 on purpose, seconds after their restore).
 */
export const SOON_AFTER_RESTORE_MS = 10_000;

export function looksLikeRestoreFailure(exitCode: number | undefined, afterMs: number): boolean {
  return exitCode !== undefined && (exitCode === 1 || exitCode >= 128) && afterMs < SOON_AFTER_RESTORE_MS;
}

/** The run's last job resumed a checkpoint and its program then ended as looksLikeRestoreFailure says (ms from the job's start). */
export function failedSoonAfterRestore(state: RunState): { exitCode: number; afterMs: number } | undefined {
  const job = state.history.at(-1);
  if (job?.mode !== 'resume' || job.endedAt === undefined || state.exitCode === undefined) return undefined;
  const afterMs = Date.parse(job.endedAt) - Date.parse(job.startedAt);
  return looksLikeRestoreFailure(state.exitCode, afterMs) ? { exitCode: state.exitCode, afterMs } : undefined;
}

/**
 * At the end of a job: once the state file says the run finished, its images are of no use to
 * anyone (a finished run is never resumed) and go, unless --keep-images or the program ended
 * with a failure right after its restore. Any other end keeps them: the last good checkpoint is what
 * the next job resumes.
 */
export function releaseFinishedImages(paths: RunDirPaths, logger: Logger): void {
  let state: RunState | undefined;
  try {
    state = loadRunState(paths.state);
  } catch {
    return; // not recorded as finished: keep them
  }
  if (state?.status !== 'finished') return;
  const early = failedSoonAfterRestore(state);
  if (early) {
    logger.log(
      'warn',
      `the program ended with exit code ${early.exitCode} ${Math.round(early.afterMs / 1000)} s after this job started to restore it: that may be the restore's doing, ` +
        `so the checkpoint images are kept, to inspect or retry (ckpt-run clean removes them)`,
    );
    return;
  }
  const { freed, problems } = removeImages(paths, false);
  if (freed > 0) logger.log('info', `the run finished: removed its checkpoint images (${formatMegabytes(freed)}; --keep-images keeps them)`);
  // E.g. a lazy restore's images, still the daemon's until every page is in: clean finds them later.
  for (const problem of problems) logger.log('warn', `${problem} (ckpt-run clean lists what is left)`);
}
