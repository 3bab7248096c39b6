/**
 * The job's deadline for an answer (DIR/answer_by, src/protocol/run-dir.ts), read the way root
 * reads anything in a user's folder: through the pinned folder, never through a symlink, never
 * blocking on a FIFO, a few bytes at most. Anything else counts as no deadline: the daemon's own
 * --criu-deadline still bounds criu.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { RUN_FILES } from './run-files.js';
import type { PinnedDir } from './pinned-dir.js';

const MAX_BYTES = 32;

export function readAnswerBy(run: PinnedDir): number | undefined {
  let fd: number;
  try {
    fd = openSync(run.path(RUN_FILES.answerBy), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buffer = Buffer.alloc(MAX_BYTES);
    const text = buffer.subarray(0, readSync(fd, buffer, 0, MAX_BYTES, 0)).toString('utf8');
    return /^[1-9][0-9]{0,15}\n$/.test(text) ? Number(text.trim()) : undefined;
  } finally {
    closeSync(fd);
  }
}
