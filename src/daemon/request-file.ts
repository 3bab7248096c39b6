/**
 * Reading a request file that a user wrote into the world-writable spool: never through a
 * symlink, never blocking on a FIFO, never more than MAX_REQUEST_BYTES. The file's owner is
 * the requester, so a hard link to someone else's file must not pass as theirs.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { MAX_REQUEST_BYTES } from '../protocol/spool-request.js';
import { Refusal } from './refusal.js';

export interface RequestFile {
  owner: number;
  body: string;
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSocket()) return 'socket';
  return 'device';
}

function openNoFollow(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Refusal(code === 'ELOOP' ? 'the request is a symlink' : `cannot open the request (${code})`);
  }
}

export function readRequestFile(path: string): RequestFile {
  const fd = openNoFollow(path);
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new Refusal(`the request is a ${kindOf(stats)}, not a regular file`);
    if (stats.nlink !== 1) throw new Refusal('the request file has other hard links (whose owner would it be?)');
    if (stats.size > MAX_REQUEST_BYTES) throw new Refusal(`the request is ${stats.size} bytes, more than ${MAX_REQUEST_BYTES}`);
    // One byte more than allowed shows a file that grew since fstat.
    const buffer = Buffer.alloc(MAX_REQUEST_BYTES + 1);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    if (length > MAX_REQUEST_BYTES) throw new Refusal(`the request is more than ${MAX_REQUEST_BYTES} bytes`);
    return { owner: stats.uid, body: buffer.subarray(0, length).toString('utf8') };
  } finally {
    closeSync(fd);
  }
}
