/**
 * The daemon's sign of life for jobs: SPOOL/ckpt-daemon.heartbeat, its mtime refreshed every
 * HEARTBEAT_INTERVAL_MS, so that a job whose request stays unread can tell "busy" from "gone";
 * its content says what this daemon can do beyond the public protocol (its features).
 * The spool is world-writable: the file is replaced (never written through) when it is not
 * the daemon's own regular file, and its time is set with lutimes, which follows no symlink.
 */
import { lstatSync, lutimesSync, rmSync } from 'node:fs';
import { formatHeartbeat, HEARTBEAT_FILE, HEARTBEAT_INTERVAL_MS } from '../protocol/heartbeat.js';
import { publishFile } from './owned-files.js';
import type { PinnedDir } from './pinned-dir.js';

function beat(spool: PinnedDir): void {
  const path = spool.path(HEARTBEAT_FILE);
  let ours = false;
  try {
    const stats = lstatSync(path);
    ours = stats.isFile() && stats.uid === process.getuid?.();
  } catch {
    // not there yet
  }
  if (ours) {
    const now = new Date();
    lutimesSync(path, now, now);
  } else {
    publishFile(spool, HEARTBEAT_FILE, formatHeartbeat(process.pid), { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  }
}

export function startHeartbeat(spool: PinnedDir, onError: (error: Error) => void): { stop(): void } {
  const tick = (): void => {
    try {
      beat(spool);
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
