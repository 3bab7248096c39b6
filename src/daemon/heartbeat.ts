/**
 * The daemon's sign of life for jobs: SPOOL/ckpt-daemon.heartbeat, its mtime refreshed every
 * HEARTBEAT_INTERVAL_MS, so that a job whose request stays unread can tell "busy" from "gone";
 * its content says what this daemon can do beyond the public protocol (its features) and how fast
 * it dumped its canary at start. Its first beat writes the content anew: a heartbeat left by a
 * daemon that was killed holds that daemon's PID and measurement.
 * The spool is world-writable: the file is replaced (never written through) when it is not
 * the daemon's own regular file, and its time is set with lutimes, which follows no symlink.
 */
import { lstatSync, lutimesSync, rmSync } from 'node:fs';
import { formatHeartbeat, HEARTBEAT_FILE, HEARTBEAT_INTERVAL_MS, type DumpRate } from '../protocol/heartbeat.js';
import { publishFile } from './owned-files.js';
import type { PinnedDir } from './pinned-dir.js';

function beat(spool: PinnedDir, content: string, first: boolean): void {
  const path = spool.path(HEARTBEAT_FILE);
  let ours = false;
  try {
    const stats = lstatSync(path);
    ours = stats.isFile() && stats.uid === process.getuid?.();
  } catch {
    // not there yet
  }
  if (ours && !first) {
    const now = new Date();
    lutimesSync(path, now, now);
  } else {
    publishFile(spool, HEARTBEAT_FILE, content, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  }
}

export function startHeartbeat(spool: PinnedDir, dumpRate: DumpRate | undefined, onError: (error: Error) => void): { stop(): void } {
  const content = formatHeartbeat(process.pid, dumpRate);
  let first = true;
  const tick = (): void => {
    try {
      beat(spool, content, first);
      first = false;
    } catch (error) {
      onError(error as Error);
    }
  };
  tick();
  const timer = setInterval(tick, HEARTBEAT_INTERVAL_MS);
  return {
    stop() {
      clearInterval(timer);
      rmSync(spool.path(HEARTBEAT_FILE), { force: true });
    },
  };
}
