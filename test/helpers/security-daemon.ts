/**
 * The real bin/ckpt-daemon, as root, for the adversarial suite: the criu engine (through the
 * prlimit shim where root lacks CAP_SYS_RESOURCE), its log in a file. Every wait is on a line
 * of that log, with a bound; a verdict is the daemon's own words for one request.
 */
import { RealDaemon } from './real-daemon.js';

export interface Verdict {
  outcome: 'done' | 'refused' | 'failed';
  /** The daemon's reason (refused, failed), or what it did (done). */
  reason: string;
  line: string;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The real daemon, read as the adversarial suite needs: its verdict on each request. */
export class SecurityDaemon extends RealDaemon {
  /**
   * The daemon's verdict on a request of job JOBID: the first one of KIND (dump or restore) whose
   * line holds MATCH (e.g. "PID 123 "), if given.
   */
  async verdict(jobId: string, options: { kind?: 'dump' | 'restore'; match?: string; timeoutMs?: number } = {}): Promise<Verdict> {
    const kind = options.kind ?? '(?:dump|restore)';
    const head = `job ${escape(jobId)}: (?:refused )?${kind} of ${options.match ? `[^\n]*${escape(options.match)}` : ''}`;
    const pattern = new RegExp(`${head}.* (?:done in|failed after|for \\S+ \\(uid \\d+\\):)`);
    const line = (await this.logged(pattern, `the verdict on job ${jobId}`, options.timeoutMs)).input as string;
    const refused = /: refused (?:dump|restore) of .*? for \S+ \(uid \d+\): (.*)$/.exec(line);
    if (refused) return { outcome: 'refused', reason: refused[1], line };
    const failed = / failed after [\d.]+ s: (.*)$/.exec(line);
    if (failed) return { outcome: 'failed', reason: failed[1], line };
    return { outcome: 'done', reason: /: ((?:dump|restore) of .* done in .*)$/.exec(line)?.[1] ?? line, line };
  }

  /** The daemon's refusal of the spool entry NAME, before any request was made of it. */
  async spoolRefusal(name: string, timeoutMs = 30_000): Promise<Verdict> {
    const line = (await this.logged(new RegExp(`warn: refused ${escape(name)}(?: from uid \\d+)?: `), `the refusal of ${name}`, timeoutMs)).input as string;
    return { outcome: 'refused', reason: line.slice(line.indexOf(': ', line.indexOf(`refused ${name}`)) + 2), line };
  }
}
