/**
 * The disk a run folder takes, and which of its checkpoint images no job will ever resume: a
 * finished run's (the next job starts a new run) and those of a run without checkpoint_ok (its
 * next job starts it from the beginning). The images of a run that may still resume are never
 * touched, nor those of a run whose job may be running now: a dump in progress renames its
 * images into place before it writes checkpoint_ok.
 * The daemon hands every completed dump over to the user (daemon/owned-files.ts), so the user's
 * own rm removes it; only a dump that never completed stays root's (see removeImages).
 */
import { readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { formatMegabytes } from '../base/sizes.js';
import { imagesBytes, PARTIAL_IMAGES_PREFIX, RUNS_FOLDER, type RunDirPaths } from '../protocol/run-dir.js';
import { loadRunState, type RunState } from './run-state.js';

export interface DiskUse {
  /** The whole run folder: images, output logs, state. */
  total: number;
  /** Its checkpoint images (checkpoint/, checkpoint.old/, unfinished dumps). */
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
    .filter((name) => named.includes(name) || name.startsWith(PARTIAL_IMAGES_PREFIX))
    .sort()
    .map((name) => join(paths.dir, name));
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

/** Removes the run's image folders; what it removed and freed, and one line per folder it could not remove. */
export function removeImages(paths: RunDirPaths): { removed: string[]; freed: number; problems: string[] } {
  let freed = 0;
  const removed: string[] = [];
  const problems: string[] = [];
  for (const dir of imageFolders(paths)) {
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
 * At the end of a job: once the state file says the run finished, its images are of no use to
 * anyone (a finished run is never resumed) and go, unless --keep-images. Any other end keeps
 * them: the last good checkpoint is what the next job resumes.
 */
export function releaseFinishedImages(paths: RunDirPaths, logger: Logger): void {
  let state: RunState | undefined;
  try {
    state = loadRunState(paths.state);
  } catch {
    return; // not recorded as finished: keep them
  }
  if (state?.status !== 'finished') return;
  const { freed, problems } = removeImages(paths);
  if (freed > 0) logger.log('info', `the run finished: removed its checkpoint images (${formatMegabytes(freed)}; --keep-images keeps them)`);
  // E.g. a lazy restore's images, still the daemon's until every page is in: clean finds them later.
  for (const problem of problems) logger.log('warn', `${problem} (ckpt-run clean lists what is left)`);
}
