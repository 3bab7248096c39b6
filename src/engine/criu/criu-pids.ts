/**
 * A restore that finds an ID of the tree taken, or its pseudo-terminal number (criu-log.ts says
 * which, or that a thread ID was): what to wait for, waiting for it to go, and who holds it when
 * it does not.
 */
import { existsSync, readdirSync } from 'node:fs';
import { holdersOf, processLabel, readOrEmpty, sleep } from '../../proc/processes.js';
import { busyPid, busyPty, threadIdTaken } from './criu-log.js';
import { EngineError } from '../engine.js';

/** Between two tries: criu's PID may be taken while /proc does not show it. */
const RETRY_PAUSE_MS = 50;

/** Waits until each of PATHS is gone (/proc/ID: a zombie still holds ID); false at the deadline. */
export async function vanish(paths: string[], deadline: number): Promise<boolean> {
  do {
    await sleep(RETRY_PAUSE_MS);
    if (Date.now() > deadline) return false;
  } while (paths.some((path) => existsSync(path)));
  return true;
}

/** The tree's thread IDs that /proc shows taken: criu writes a core-TID.img for each thread of each process. */
function takenThreadIds(imagesDir: string): number[] {
  return readdirSync(imagesDir)
    .map((name) => /^core-(\d+)\.img$/.exec(name)?.[1])
    .filter((id): id is string => id !== undefined)
    .map(Number)
    .filter((tid) => existsSync(`/proc/${tid}`));
}

/** Which process holds thread ID TID, for the message: "PID 1234 (sleep)". */
function holderOf(tid: number): string {
  const pid = /^Tgid:\s*(\d+)$/m.exec(readOrEmpty(`/proc/${tid}/status`))?.[1] ?? String(tid);
  return processLabel(Number(pid));
}

/**
 * What a failed restore waits to see gone before it tries again: the PID criu names, the tree's
 * thread IDs that /proc shows taken (criu names none; none shown: one that was taken briefly), or
 * the pseudo-terminal number criu could not have (another job's MPI rank ending frees it).
 * Undefined when nothing in use is why it failed.
 */
export function takenPaths(reason: string, imagesDir: string): string[] | undefined {
  const pid = busyPid(reason);
  if (pid !== undefined) return [`/proc/${pid}`];
  const pty = busyPty(reason);
  if (pty !== undefined) return [`/dev/pts/${pty}`];
  return threadIdTaken(reason) ? takenThreadIds(imagesDir).map((tid) => `/proc/${tid}`) : undefined;
}

/** A restore's last failure for something in use: with who holds it, which criu does not name. */
export function stillTaken(error: EngineError, imagesDir: string): EngineError {
  const pty = busyPty(error.reason);
  const held =
    pty !== undefined
      ? holdersOf(`/dev/pts/${pty}`).map((holder) => `/dev/pts/${pty} by ${holder}`)
      : threadIdTaken(error.reason)
        ? takenThreadIds(imagesDir).map((tid) => `thread ID ${tid} by ${holderOf(tid)}`)
        : [];
  if (held.length === 0) return error;
  return new EngineError(`${error.reason}; held now: ${held.join(', ')}`, error.retryable, error.log);
}
