/**
 * The daemon's sign of life, as both sides of the spool protocol read it: ckpt-daemon refreshes
 * SPOOL/HEARTBEAT_FILE (src/daemon/heartbeat.ts) so that a job whose request stays unread can
 * tell "busy" from "gone" (src/launcher/decisions.ts, daemonVerdict).
 */
/** In the spool dir. */
export const HEARTBEAT_FILE = 'ckpt-daemon.heartbeat';
export const HEARTBEAT_INTERVAL_MS = 2000;
/** A heartbeat older than this means the daemon is gone. */
export const HEARTBEAT_STALE_MS = 3 * HEARTBEAT_INTERVAL_MS;

/**
 * What a daemon can do beyond the public protocol, said on the heartbeat's second line
 * ("features: a b"). The clusters' existing daemon writes no heartbeat: it can do none of them.
 */
export type DaemonFeature = 'leave-running' | 'job-lease';

/** leave-running: periodic checkpoints (DIR/checkpoint_mode); job-lease: a resume request may name the job's PID. */
export const DAEMON_FEATURES: readonly DaemonFeature[] = ['leave-running', 'job-lease'];

/** The heartbeat file's content: the daemon's PID, then its features. */
export function formatHeartbeat(pid: number): string {
  return `${pid}\nfeatures: ${DAEMON_FEATURES.join(' ')}\n`;
}

/** The features a heartbeat says its daemon has (none for a heartbeat with no features line). */
export function heartbeatFeatures(text: string): string[] {
  const line = text.split('\n').find((candidate) => candidate.startsWith('features:'));
  return line === undefined ? [] : line.slice('features:'.length).trim().split(/\s+/).filter(Boolean);
}
