import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { onExit } from 'signal-exit';

// Temp files still on disk when the process dies are removed by signal-exit, so that an
// interrupted write never leaves a half-written request that a daemon could pick up.
const pendingTemps = new Set<string>();
let cleanupInstalled = false;

function removePendingTemps(): void {
  for (const temp of pendingTemps) {
    try {
      unlinkSync(temp);
    } catch {
      // already gone
    }
  }
}

/**
 * Writes `content` to `path` so that a reader sees either the old file or the whole new one:
 * the data goes to a hidden temp name in the same directory and is renamed over `path`.
 * The temp name starts with "." so that a spool watcher matching "*.checkpoint" skips it.
 * `durable` adds an fsync (milliseconds under load): for state that must survive a node crash,
 * not for a request that dies with the job anyway.
 */
export function writeFileAtomic(path: string, content: string, { durable = true, mode = 0o644 } = {}): void {
  if (!cleanupInstalled) {
    onExit(removePendingTemps);
    cleanupInstalled = true;
  }
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  pendingTemps.add(temp);
  try {
    const fd = openSync(temp, 'w', mode);
    try {
      writeSync(fd, content);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // never created
    }
    throw error;
  } finally {
    pendingTemps.delete(temp);
  }
}
