import { statSync } from 'node:fs';

/**
 * Which dump `checkpoint_ok` marks: the daemon replaces the file (a new inode) after every
 * complete dump, so its inode and mtime change exactly when a new checkpoint exists.
 * Undefined while there is none.
 */
export function checkpointIdentity(checkpointOk: string): string | undefined {
  try {
    const stats = statSync(checkpointOk, { bigint: true });
    return `${stats.ino}:${stats.mtimeNs}`;
  } catch {
    return undefined;
  }
}
