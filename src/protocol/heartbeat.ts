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

/**
 * How fast this node's daemon dumped its memory canary at start (engine/criu-probe.ts,
 * measureDumpRate), said on the heartbeat's "dump-rate:" line: a job plans its final checkpoint
 * from it until one of its own dumps measures more (launcher/final-plan.ts).
 */
export interface DumpRate {
  bytesPerSec: number;
  /** The canary's memory and how long its dump took, for the log. */
  canaryBytes: number;
  canaryMs: number;
}

const DUMP_RATE_LINE = /^dump-rate: (\d+) bytes\/s \((\d+) bytes in (\d+) ms\)$/m;

/** The heartbeat file's content: the daemon's PID, its features, and the dump rate it measured (if it did). */
export function formatHeartbeat(pid: number, dumpRate?: DumpRate): string {
  const rate = dumpRate
    ? `dump-rate: ${Math.round(dumpRate.bytesPerSec)} bytes/s (${Math.round(dumpRate.canaryBytes)} bytes in ${Math.round(dumpRate.canaryMs)} ms)\n`
    : '';
  return `${pid}\nfeatures: ${DAEMON_FEATURES.join(' ')}\n${rate}`;
}

/** The dump rate a heartbeat says its daemon measured; undefined when it says none (or nothing usable). */
export function heartbeatDumpRate(text: string): DumpRate | undefined {
  const match = DUMP_RATE_LINE.exec(text);
  if (!match) return undefined;
  const [bytesPerSec, canaryBytes, canaryMs] = match.slice(1).map(Number);
  return bytesPerSec > 0 ? { bytesPerSec, canaryBytes, canaryMs } : undefined;
}

/** The features a heartbeat says its daemon has (none for a heartbeat with no features line). */
export function heartbeatFeatures(text: string): string[] {
  const line = text.split('\n').find((candidate) => candidate.startsWith('features:'));
  return line === undefined ? [] : line.slice('features:'.length).trim().split(/\s+/).filter(Boolean);
}
