/**
 * What ckpt-daemon leaves in the run directory when a dump or a restore fails, so that the
 * job side reports CRIU's reason at once instead of waiting out its timeout. JSON on one line:
 * `retryable` marks failures that another node or a later try can overcome (a PID in use).
 */
export interface DaemonReport {
  reason: string;
  retryable: boolean;
  log?: string;
  /** A dump cut short: how the daemon found the program afterwards (running, frozen, gone). */
  program?: 'running' | 'frozen' | 'gone';
}

export function formatDaemonReport(report: DaemonReport): string {
  return `${JSON.stringify(report)}\n`;
}

export function parseDaemonReport(text: string): DaemonReport | undefined {
  if (!text.endsWith('\n')) return undefined;
  try {
    const value = JSON.parse(text) as Partial<DaemonReport>;
    if (typeof value.reason !== 'string') return undefined;
    const program = value.program === 'running' || value.program === 'frozen' || value.program === 'gone' ? value.program : undefined;
    return { reason: value.reason, retryable: value.retryable === true, log: value.log, ...(program ? { program } : {}) };
  } catch {
    return undefined;
  }
}
