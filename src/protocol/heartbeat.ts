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
