/**
 * The spool folder: world-writable (mode 1777) so that jobs can drop requests in it. The
 * daemon takes a request by renaming it into its private folder SPOOL/.ckpt-daemon (mode 0700)
 * at once: the job side sees it consumed, no other pass takes it twice, and its writer can no
 * longer touch it by name.
 */
import {
  chmodSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmdirSync, unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { MAX_REQUEST_BYTES, parseRequest, parseRequestName, type RequestKind } from '../protocol/spool-request.js';

export const PRIVATE_FOLDER = '.ckpt-daemon';

/**
 * Writers that are not ckpt-run (`echo "$PID\n$DIR" > SPOOL/JOB.checkpoint`) create the file
 * before they fill it: a request without its final newline gets this long to be completed.
 */
export const HALF_WRITTEN_GRACE_MS = 2000;

export interface PickedRequest {
  /** The request's new path, in the private folder. */
  path: string;
  jobId: string;
  kind: RequestKind;
}

/** The spool cannot be used: the daemon does not start. */
export class SpoolError extends Error {}

/** Creates DIR with MODE unless it exists; either way it must be the daemon's own directory. */
function ownFolder(dir: string, mode: number, description: string): void {
  try {
    mkdirSync(dir);
    chmodSync(dir, mode); // mkdir's mode is cut by the umask
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new SpoolError(`cannot create the ${description} ${dir}: ${(error as Error).message}`);
    }
  }
  const stats = lstatSync(dir);
  if (!stats.isDirectory()) throw new SpoolError(`the ${description} ${dir} is not a directory (a symlink?)`);
  if (stats.uid !== process.getuid?.()) throw new SpoolError(`the ${description} ${dir} belongs to uid ${stats.uid}, not to the daemon`);
}

/** Creates (or checks) the spool folder (mode 1777) and the private folder; returns the latter. */
export function prepareSpool(spoolDir: string): string {
  ownFolder(spoolDir, 0o1777, 'spool folder');
  const privateDir = join(spoolDir, PRIVATE_FOLDER);
  ownFolder(privateDir, 0o700, 'private folder');
  if ((lstatSync(privateDir).mode & 0o077) !== 0) throw new SpoolError(`the private folder ${privateDir} is open to other users`);
  return privateDir;
}

/**
 * Deletes a taken request, never recursively: a user who made a folder of that name could
 * still change its content (from a shell inside it) under root's feet. A non-empty folder
 * stays, and the error says so.
 */
export function discard(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
    rmdirSync(path);
  }
}

/**
 * A regular file modified less than the grace period ago that is not yet a whole request.
 * A final newline is not enough: bash's `echo -e "$PID\n$DIR"` writes the two lines in two
 * write() calls, so a checkpoint request can end in a newline after its first line only.
 */
function stillBeingWritten(path: string, kind: RequestKind, jobId: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > MAX_REQUEST_BYTES || Date.now() - stats.mtimeMs > HALF_WRITTEN_GRACE_MS) return false;
    const body = Buffer.alloc(stats.size);
    const read = stats.size === 0 ? 0 : readSync(fd, body, 0, stats.size, 0);
    try {
      parseRequest(kind, jobId, body.subarray(0, read).toString('utf8'));
      return false;
    } catch {
      return true;
    }
  } finally {
    closeSync(fd);
  }
}

let taken = 0;

/**
 * Takes the spool entry NAME if it is a request ready to serve. Undefined for anything else:
 * not a request name, still being written (a later event or poll comes back to it), or
 * already gone.
 */
export function pickUp(spoolDir: string, privateDir: string, name: string): PickedRequest | undefined {
  const parsed = parseRequestName(name);
  if (!parsed) return undefined;
  const source = join(spoolDir, name);
  if (stillBeingWritten(source, parsed.kind, parsed.jobId)) return undefined;
  const path = join(privateDir, `${name}.${process.pid}.${++taken}`);
  try {
    renameSync(source, path);
  } catch {
    return undefined;
  }
  return { path, ...parsed };
}
