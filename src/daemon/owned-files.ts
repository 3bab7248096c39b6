/**
 * Files the daemon leaves for a user in that user's folders: created as new files (so that a
 * symlink planted under the name is replaced, never followed) and owned by the user, who must
 * be able to read, replace and delete them. A daemon that is not root writes them as itself,
 * which is the requester (it serves no one else).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, constants, fchownSync, fsyncSync, lchownSync, lstatSync, openSync, readdirSync, renameSync, rmSync, writeSync, type Stats,
} from 'node:fs';
import type { PinnedDir } from './pinned-dir.js';

export interface Owner {
  uid: number;
  gid: number;
}

export const runsAsRoot = (): boolean => process.getuid?.() === 0;

/**
 * Writes NAME in DIR as a new inode (a temp file renamed over NAME), owned by OWNER: readers
 * see the old file or the whole new one, and a watcher can tell a new file by its inode.
 */
export function publishFile(dir: PinnedDir, name: string, content: string, owner: Owner): void {
  const temp = `.${name}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    const fd = openSync(dir.path(temp), flags, 0o644);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
      if (runsAsRoot()) fchownSync(fd, owner.uid, owner.gid);
    } finally {
      closeSync(fd);
    }
    renameSync(dir.path(temp), dir.path(name));
  } catch (error) {
    rmSync(dir.path(temp), { force: true });
    throw error;
  }
}

/** The entries of a flat folder (CRIU writes no subfolders), with their attributes. */
export function entriesOf(dir: PinnedDir): Array<{ name: string; stats: Stats }> {
  return readdirSync(dir.path()).map((name) => ({ name, stats: lstatSync(dir.path(name)) }));
}

/** Gives every entry of DIR, then DIR itself, to OWNER; returns the entries' total size. */
export function handOver(dir: PinnedDir, owner: Owner): number {
  let bytes = 0;
  for (const { name, stats } of entriesOf(dir)) {
    bytes += stats.size;
    if (runsAsRoot()) lchownSync(dir.path(name), owner.uid, owner.gid);
  }
  if (runsAsRoot()) fchownSync(dir.fd, owner.uid, owner.gid);
  return bytes;
}
