/**
 * The real bin/ckpt-daemon as a separate root process, the one way the suites start it (on real
 * CRIU, under OAR and Slurm, attacked or broken): started on a spool dir with its log in a file, waited on through that log (bounded),
 * stopped with SIGTERM, or killed outright together with the criu it runs (as a node's service
 * manager would kill the service's whole cgroup).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childrenOf } from '../../src/proc/processes.js';
import { isGone } from './daemon-fixtures.js';
import { waitUntil } from './poll.js';
import { Proc, ROOT } from './launcher-harness.js';
import { killAll, procText } from './listed-processes.js';

export const CKPT_DAEMON = join(ROOT, 'bin/ckpt-daemon');

export interface DaemonStart {
  spool: string;
  logPath: string;
  criu: string;
  /** The key file, in a private folder of the suite's (the daemon creates it if absent). */
  imageKey: string;
  /** Log every step (--verbose). */
  verbose?: boolean;
  /** More ckpt-daemon options (--criu-deadline, --criu-breakpoints). */
  extraArgs?: string[];
}

export class RealDaemon {
  constructor(
    readonly proc: Proc,
    readonly logPath: string,
    /** Where this daemon's own lines start in a log file that earlier daemons may share. */
    private readonly logStart: number,
  ) {}

  /** Starts a daemon and waits (bounded) until it says it serves the spool dir. */
  static async start<T extends RealDaemon>(
    this: new (proc: Proc, logPath: string, logStart: number) => T,
    { spool, logPath, criu, imageKey, verbose, extraArgs = [] }: DaemonStart,
  ): Promise<T> {
    let logStart = 0;
    try {
      logStart = readFileSync(logPath).length;
    } catch {
      // a new log
    }
    const args = [CKPT_DAEMON, '--spool-dir', spool, '--log', logPath, '--engine', 'criu', '--criu', criu, '--image-key', imageKey, ...(verbose ? ['--verbose'] : []), ...extraArgs];
    const proc = new Proc(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const daemon = new this(proc, logPath, logStart);
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

  /** This daemon's part of the log. */
  log(): string {
    try {
      return readFileSync(this.logPath).subarray(this.logStart).toString();
    } catch {
      return '';
    }
  }

  lines(): string[] {
    return this.log().split('\n');
  }

  tail(lines = 30): string {
    return this.lines().slice(-lines).join('\n');
  }

  /** Waits (bounded) for a log line matching PATTERN; the match's `input` is the whole line. */
  async logged(pattern: RegExp, what: string, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    let found: RegExpMatchArray | undefined;
    await waitUntil(
      () => {
        if (this.proc.child.exitCode !== null) throw new Error(`ckpt-daemon exited (${this.proc.child.exitCode}) while waiting for ${what}\n${this.tail()}`);
        for (const line of this.lines()) {
          found = line.match(pattern) ?? undefined;
          if (found) return true;
        }
        return false;
      },
      `${what} in the daemon's log\n${this.tail()}`,
      timeoutMs,
    );
    return found as RegExpMatchArray;
  }

  /** The criu processes the daemon runs now (each leads its own process group). */
  criuPids(): number[] {
    return childrenOf(this.pid).filter((pid) => procText(pid, 'cmdline')?.includes('criu'));
  }

  /** SIGKILL to the daemon and to its criu's process group, at once; waits until all are gone. */
  async kill(): Promise<number[]> {
    const criu = this.criuPids();
    killAll(criu.flatMap((pid) => [-pid, pid]), 'SIGKILL');
    this.proc.child.kill('SIGKILL');
    await this.proc.exited;
    await waitUntil(() => criu.every(isGone), `criu ${criu.join(' ')} to be gone`);
    return criu;
  }

  /** SIGTERM (the daemon finishes what it serves and exits 0), then the exit code; SIGKILL if it hangs. */
  async stop(): Promise<number | null> {
    if (this.proc.child.exitCode !== null || this.proc.child.signalCode !== null) return this.proc.child.exitCode;
    this.proc.child.kill('SIGTERM');
    try {
      return await this.proc.exitCode(60_000);
    } catch (error) {
      this.proc.child.kill('SIGKILL');
      throw error;
    }
  }
}
