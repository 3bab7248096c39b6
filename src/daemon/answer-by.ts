/**
 * What the job says of its request beside it (src/protocol/run-dir.ts): its deadline for an
 * answer (DIR/answer_by), whether the dump leaves the program running (DIR/checkpoint_mode),
 * which checkpoint a resume is for (DIR/resume_from), and when the program started
 * (DIR/program_started: what its user made in the node's own folders since then travels).
 * Read the way root reads anything in a user's folder: through the pinned folder, never through
 * a symlink, never blocking on a FIFO, a few bytes at most. Anything else counts as not said: no
 * deadline (the daemon's own --criu-deadline still bounds criu), a dump that stops the program.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { LEAVE_RUNNING } from '../protocol/run-dir.js';
import { RUN_FILES } from './run-files.js';
import type { PinnedDir } from './pinned-dir.js';

const MAX_BYTES = 64;

/** The first bytes of the regular file NAME in the run folder; undefined if it is not one. */
function readSmall(run: PinnedDir, name: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(run.path(name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buffer = Buffer.alloc(MAX_BYTES);
    return buffer.subarray(0, readSync(fd, buffer, 0, MAX_BYTES, 0)).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function readAnswerBy(run: PinnedDir): number | undefined {
  const text = readSmall(run, RUN_FILES.answerBy);
  return text !== undefined && /^[1-9][0-9]{0,15}\n$/.test(text) ? Number(text.trim()) : undefined;
}

/** The checkpoint the job rolled its files back to, if it says (checkpoint_ok's identity). */
export function readResumeFrom(run: PinnedDir): string | undefined {
  const text = readSmall(run, RUN_FILES.resumeFrom);
  return text !== undefined && /^\d+:\d+\n$/.test(text) ? text.trim() : undefined;
}

/**
 * When the program started, epoch ms. The user's word: a false one only changes which of the
 * user's own entries travel, copied as the user (protocol/local-state.ts).
 */
export function readProgramStarted(run: PinnedDir): number | undefined {
  const text = readSmall(run, RUN_FILES.programStarted);
  return text !== undefined && /^[1-9][0-9]{0,15}\n$/.test(text) ? Number(text.trim()) : undefined;
}

export function readLeaveRunning(run: PinnedDir): boolean {
  return readSmall(run, RUN_FILES.checkpointMode) === `${LEAVE_RUNNING}\n`;
}
