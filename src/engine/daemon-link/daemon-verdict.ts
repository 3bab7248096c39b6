/** What the job makes of the daemon's signs of life while a request is out: pure, tested with a fake clock (test/unit/supervisor-decisions.test.ts). */

/** What the supervisor sees of the daemon while a request of ours is out. */
export interface DaemonSigns {
  /** The request file is still in the spool (the daemon takes it away when it reads it). */
  requestUnread: boolean;
  /** How old the heartbeat is (ms); undefined when there is no heartbeat file. */
  heartbeatAgeMs?: number;
  requestPath: string;
  heartbeatPath: string;
  graceMs: number;
  /** Past this age the heartbeat means the daemon is gone. */
  staleMs: number;
}

/**
 * Whether a daemon serves our request: one that leaves it unread past the grace period with
 * no live heartbeat is absent; one whose heartbeat stops while it serves the request died
 * mid-way (a daemon that never had a heartbeat is trusted once it took the request). While
 * the heartbeat is fresh the daemon is only busy: look again, as it may die meanwhile.
 */
export function daemonVerdict(signs: DaemonSigns): { silent: false } | { silent: true; detail: string } {
  const age = signs.heartbeatAgeMs;
  if ((age !== undefined && age < signs.staleMs) || (!signs.requestUnread && age === undefined)) return { silent: false };
  const why = age === undefined ? `no heartbeat file ${signs.heartbeatPath}` : `its heartbeat ${signs.heartbeatPath} is ${Math.round(age / 1000)} s old`;
  return {
    silent: true,
    detail: signs.requestUnread
      ? `no checkpoint daemon answered: ${signs.requestPath} is still unread after ${signs.graceMs / 1000} s and ${why} ` +
        '(is ckpt-daemon running on this node? for a daemon without heartbeat use --no-daemon-check)'
      : `the checkpoint daemon stopped while serving ${signs.requestPath}: ${why}`,
  };
}
