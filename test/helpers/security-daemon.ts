/**
 * The real bin/ckpt-daemon, as root, for the adversarial suite: the criu engine (through the
 * prlimit shim where root lacks CAP_SYS_RESOURCE), its log in a file. Every wait is on a line
 * of that log, with a bound; a verdict is the daemon's own words for one request.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from './daemon-fixtures.js';
import { Proc, ROOT } from './launcher-harness.js';
import { IN_CI } from './real-parts.js';

const CKPT_DAEMON = join(ROOT, 'bin/ckpt-daemon');
const PRLIMIT_SHIM = '/opt/ckpt-run/criu/bin/criu-prlimit-shim';

/**
 * The criu that can dump another user's process here: criu itself where root has
 * CAP_SYS_RESOURCE (real nodes), else the opt-in prlimit shim (installed in CI if missing).
 */
export function criuForUsers(): string | undefined {
  if (process.env.CKPT_CRIU) return process.env.CKPT_CRIU;
  const bounding = BigInt(`0x${/^CapBnd:\s*(\w+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]}`);
  if ((bounding >> 24n) & 1n) return 'criu';
  if (!existsSync(PRLIMIT_SHIM) && IN_CI) execFileSync('bash', [join(ROOT, 'scripts/install-criu.sh'), '--with-prlimit-shim'], { stdio: 'inherit' });
  return existsSync(PRLIMIT_SHIM) ? PRLIMIT_SHIM : undefined;
}

export interface Verdict {
  outcome: 'done' | 'refused' | 'failed';
  /** The daemon's reason (refused, failed), or what it did (done). */
  reason: string;
  line: string;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class SecurityDaemon {
  private constructor(
    readonly proc: Proc,
    readonly logPath: string,
  ) {}

  /** IMAGEKEY: the key file, in a private folder of the suite's (created by the daemon if absent). */
  static async start(spool: string, logPath: string, criu: string, imageKey: string): Promise<SecurityDaemon> {
    const args = [CKPT_DAEMON, '--spool-dir', spool, '--log', logPath, '--criu', criu, '--image-key', imageKey];
    const proc = new Proc(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const daemon = new SecurityDaemon(proc, logPath);
    await waitUntil(
      () => daemon.log().includes(`serving ${spool} with the criu engine (PID ${daemon.pid})`) || proc.child.exitCode !== null,
      'ckpt-daemon to start',
      20_000,
    );
    if (proc.child.exitCode !== null) throw new Error(`ckpt-daemon did not start: ${proc.stderr}`);
    return daemon;
  }

  get pid(): number {
    return this.proc.child.pid as number;
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  lines(): string[] {
    return this.log().split('\n');
  }

  /** Waits (bounded) for a log line matching PATTERN; returns it. */
  async logged(pattern: RegExp, what: string, timeoutMs = 30_000): Promise<string> {
    let found: string | undefined;
    await waitUntil(
      () => {
        if (this.proc.child.exitCode !== null) throw new Error(`ckpt-daemon exited (${this.proc.child.exitCode}) while waiting for ${what}\n${this.tail()}`);
        found = this.lines().find((line) => pattern.test(line));
        return found !== undefined;
      },
      `${what} in the daemon's log\n${this.tail()}`,
      timeoutMs,
    );
    return found as string;
  }

  /**
   * The daemon's verdict on a request of job JOBID: the first one of KIND (dump or restore) whose
   * line holds MATCH (e.g. "PID 123 "), if given.
   */
  async verdict(jobId: string, options: { kind?: 'dump' | 'restore'; match?: string; timeoutMs?: number } = {}): Promise<Verdict> {
    const kind = options.kind ?? '(?:dump|restore)';
    const head = `job ${escape(jobId)}: (?:refused )?${kind} of ${options.match ? `[^\n]*${escape(options.match)}` : ''}`;
    const pattern = new RegExp(`${head}.* (?:done in|failed after|for \\S+ \\(uid \\d+\\):)`);
    const line = await this.logged(pattern, `the verdict on job ${jobId}`, options.timeoutMs);
    const refused = /: refused (?:dump|restore) of .*? for \S+ \(uid \d+\): (.*)$/.exec(line);
    if (refused) return { outcome: 'refused', reason: refused[1], line };
    const failed = / failed after [\d.]+ s: (.*)$/.exec(line);
    if (failed) return { outcome: 'failed', reason: failed[1], line };
    return { outcome: 'done', reason: /: ((?:dump|restore) of .* done in .*)$/.exec(line)?.[1] ?? line, line };
  }

  /** The daemon's refusal of the spool entry NAME, before any request was made of it. */
  async spoolRefusal(name: string, timeoutMs = 30_000): Promise<Verdict> {
    const line = await this.logged(new RegExp(`warn: refused ${escape(name)}(?: from uid \\d+)?: `), `the refusal of ${name}`, timeoutMs);
    return { outcome: 'refused', reason: line.slice(line.indexOf(': ', line.indexOf(`refused ${name}`)) + 2), line };
  }

  tail(lines = 30): string {
    return this.lines().slice(-lines).join('\n');
  }

  /** SIGTERM, then (bounded) the exit code; SIGKILL if it does not stop. */
  async stop(): Promise<number | null> {
    if (this.proc.child.exitCode !== null) return this.proc.child.exitCode;
    this.proc.child.kill('SIGTERM');
    try {
      return await this.proc.exitCode(30_000);
    } catch (error) {
      this.proc.child.kill('SIGKILL');
      throw error;
    }
  }
}
