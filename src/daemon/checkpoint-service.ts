/**
 * Serving a checkpoint request. The dump goes into a NEW folder DIR/checkpoint.new-XXXXXX that
 * the daemon creates mode 0700, so that the user cannot plant symlinks in it while root
 * writes. Only a complete dump replaces the previous one: checkpoint -> checkpoint.old,
 * new -> checkpoint (the images given to the user first), then checkpoint_ok written as a NEW
 * file (the job side tells a new dump by checkpoint_ok's inode and mtime). A failed dump leaves
 * the last checkpoint, checkpoint_ok and the running program as they were; checkpoint.old, the
 * one before, is removed before the dump to make room.
 * Before the dump, the run folder's filesystem must have room for it (dump-room.ts).
 * A complete dump is signed (image-signature.ts) while the folder is still the daemon's alone:
 * the daemon restores only images it made.
 */
import { execa } from 'execa';
import { lstatSync, mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { CheckpointEngine } from '../engine/engine.js';
import { asUserArgv } from '../proc/as-user.js';
import type { Requester } from '../protocol/spool-request.js';
import { keptFigures } from '../protocol/kept-files.js';
import { createdSince } from '../protocol/local-state.js';
import { formatCheckpointStats, PARTIAL_IMAGES_PREFIX, type CheckpointStats } from '../protocol/run-dir.js';
import { checkDumpRoom } from './dump-room.js';
import { SIGNATURE_FILE, signImages } from './image-signature.js';
import { entriesOf, handOver, publishFile, runsAsRoot } from './owned-files.js';
import { PinnedDir } from './pinned-dir.js';
import { Refusal } from './refusal.js';
import { RUN_FILES } from './run-files.js';

/** The rm of the previous checkpoint runs with the user's uid, so the user can stop it: it gets this long. */
export const REMOVE_OLD_TIMEOUT_MS = 10 * 60_000;

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Frees `checkpoint.old` before the program is stopped. Root never deletes recursively in a
 * user's folder (the user could swap a subfolder for a symlink halfway): the user's own `rm`
 * does it, with the user's rights.
 */
async function removeOldImages(run: PinnedDir, requester: Requester): Promise<void> {
  if (!exists(run.path(RUN_FILES.oldImages))) return;
  if (!runsAsRoot() || requester.uid === 0) {
    rmSync(run.path(RUN_FILES.oldImages), { recursive: true, force: true });
    return;
  }
  const path = `${run.location()}/${RUN_FILES.oldImages}`;
  // Through setpriv (as-user.ts): an rm the user stops holds up this request only, not the daemon.
  const [file, ...args] = asUserArgv(requester, ['rm', '-rf', '--', path]);
  const result = await execa(file, args, {
    reject: false,
    timeout: REMOVE_OLD_TIMEOUT_MS,
    killSignal: 'SIGKILL', // a stopped rm ignores SIGTERM
  });
  if (result.exitCode !== 0) {
    const why = result.timedOut ? `rm did not finish within ${REMOVE_OLD_TIMEOUT_MS / 1000} s` : result.stderr.trim();
    throw new Refusal(`cannot remove the previous checkpoint ${path}: ${why}`);
  }
}

/** A fresh folder only the daemon can write, in the run folder, held open. */
function createImagesDir(run: PinnedDir): { name: string; images: PinnedDir } {
  const name = basename(mkdtempSync(run.path(PARTIAL_IMAGES_PREFIX)));
  const images = PinnedDir.open(run.path(name));
  // The user owns the run folder: make sure this is still the folder mkdtemp made (mode 0700).
  if (images.stats.uid !== process.getuid?.() || (images.stats.mode & 0o077) !== 0) {
    images.close();
    throw new Refusal(`${name} was replaced while it was being created`);
  }
  return { name, images };
}

/** Removes a failed dump's folder without recursion: its files, then the (empty) folder. */
function discardImages(run: PinnedDir, name: string, images: PinnedDir): void {
  for (const entry of entriesOf(images)) unlinkSync(images.path(entry.name));
  rmdirSync(run.path(name));
}

/**
 * Removes what dumps that never completed left in the run folder: a daemon (or its criu) killed
 * mid-dump leaves DIR/checkpoint.new-XXXXXX behind, root's and mode 0700, which the user can
 * neither use nor delete (nor, then, remove the run folder). Only folders that are still the
 * daemon's own and hold only files are removed; returns their names.
 */
export function discardPartialDumps(run: PinnedDir): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(run.path())) {
    if (!name.startsWith(PARTIAL_IMAGES_PREFIX)) continue;
    let images: PinnedDir;
    try {
      images = PinnedDir.open(run.path(name));
    } catch {
      continue; // not a folder (a user's file of that name), or gone
    }
    try {
      if (images.stats.uid !== process.getuid?.() || (images.stats.mode & 0o077) !== 0) continue;
      discardImages(run, name, images);
      removed.push(name);
    } catch {
      // not only files: left as it is
    } finally {
      images.close();
    }
  }
  return removed;
}

/**
 * Dumps PID into the run folder (by DEADLINE, epoch ms, when the job gave one; LEAVERUNNING: the
 * program runs on; PROGRAMSTARTED, epoch ms: what the user made in the node's own folders since
 * then travels too); resolves to the checkpoint's figures, also published in checkpoint_stats.
 */
export async function serveCheckpoint(
  engine: CheckpointEngine,
  run: PinnedDir,
  pid: number,
  requester: Requester,
  imageKey: Buffer,
  { deadline, leaveRunning = false, programStarted }: { deadline?: number; leaveRunning?: boolean; programStarted?: number } = {},
): Promise<CheckpointStats> {
  await removeOldImages(run, requester);
  const since = createdSince(programStarted, requester.uid);
  // After the previous checkpoint's removal, which frees room; before anything is written.
  if (!engine.keepsNoMemory) await checkDumpRoom(run, pid, requester, engine.localStateLimit, since);
  const { name, images } = createImagesDir(run);
  let stats: CheckpointStats;
  try {
    const { frozenMs, localState, kept } = await engine.dump({ pid, imagesDir: images.path(), requester, deadline, leaveRunning, runDir: run.location(), createdSince: since });
    publishFile(images, SIGNATURE_FILE, signImages(images, imageKey, requester.uid), requester);
    stats = {
      bytes: handOver(images, requester),
      leftRunning: leaveRunning,
      ...(frozenMs === undefined ? {} : { frozenMs }),
      ...(localState === undefined ? {} : { localState }),
      ...(kept ? { kept: keptFigures(kept) } : {}),
    };
  } catch (error) {
    discardImages(run, name, images);
    throw error;
  } finally {
    images.close();
  }
  // From here on the images are the program's latest state: a failure must keep them (named in the reason).
  try {
    if (exists(run.path(RUN_FILES.images))) renameSync(run.path(RUN_FILES.images), run.path(RUN_FILES.oldImages));
    renameSync(run.path(name), run.path(RUN_FILES.images));
  } catch (error) {
    const where = `${run.location()}/${name}`;
    throw new Error(`the dump is complete in ${where} but could not be renamed to ${RUN_FILES.images}: ${(error as Error).message}`);
  }
  // Before checkpoint_ok, so that a job that sees the new checkpoint_ok finds its figures.
  publishFile(run, RUN_FILES.checkpointStats, formatCheckpointStats(stats), requester);
  publishFile(run, RUN_FILES.checkpointOk, `${new Date().toISOString()}\n`, requester);
  return stats;
}
