/**
 * A restore that finds an ID of the tree taken (criu-log.ts says which, or that a thread ID was):
 * which IDs to wait for, waiting for them to leave /proc, and who holds them when they do not.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readOrEmpty, sleep } from '../../proc/processes.js';
import { busyPid, threadIdTaken } from './criu-log.js';
import { EngineError } from '../engine.js';

/** Between two tries: criu's PID may be taken while /proc does not show it. */
const RETRY_PAUSE_MS = 50;

/** Waits until each of IDS is gone from /proc (a zombie still holds it); false at the deadline. */
export async function vanish(ids: number[], deadline: number): Promise<boolean> {
  do {
    await sleep(RETRY_PAUSE_MS);
    if (Date.now() > deadline) return false;
  } while (ids.some((id) => existsSync(`/proc/${id}`)));
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
  return `PID ${pid} (${readOrEmpty(`/proc/${pid}/comm`).trim() || 'gone'})`;
}

/**
 * The IDs a failed restore waits for before it tries again: the PID criu names, or the tree's
 * thread IDs that /proc shows taken (criu names none; none shown: one that was taken briefly).
 * Undefined when no ID in use is why it failed.
 */
export function takenIds(reason: string, imagesDir: string): number[] | undefined {
  const pid = busyPid(reason);
  if (pid !== undefined) return [pid];
  return threadIdTaken(reason) ? takenThreadIds(imagesDir) : undefined;
}

/** A restore's last failure for an ID in use: with who holds the thread IDs, which criu does not name. */
export function stillTaken(error: EngineError, imagesDir: string): EngineError {
  if (!threadIdTaken(error.reason)) return error;
  const held = takenThreadIds(imagesDir);
  if (held.length === 0) return error;
  const holders = held.map((tid) => `${tid} by ${holderOf(tid)}`).join(', ');
  return new EngineError(`${error.reason}; held now: thread ID ${holders}`, error.retryable, error.log);
}
