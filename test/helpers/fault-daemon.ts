/**
 * The real bin/ckpt-daemon as a separate process, for the fault tests: started, stopped, or
 * killed outright together with the criu it is running (as a node's service manager would kill
 * the service's whole cgroup). Its log is a file, read to wait on what it says.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { childrenOf } from '../../src/proc/process-liveness.js';
import { isGone, waitUntil } from './daemon-fixtures.js';
import { Proc, ROOT } from './launcher-harness.js';

export const CKPT_DAEMON = join(ROOT, 'bin/ckpt-daemon');

/** The criu the daemon runs: $CKPT_CRIU, else criu from PATH (the jobs here are root's). */
export const CRIU = process.env.CKPT_CRIU ?? 'criu';

export class FaultDaemon {
  private constructor(
    readonly proc: Proc,
    readonly logPath: string,
    /** Where this daemon's own lines start in the (shared) log file. */
    private readonly logStart: number,
  ) {}

  /** Starts a daemon on SPOOL and waits (bounded) until it says it serves it. */
  static async start(spool: string, logPath: string): Promise<FaultDaemon> {
    let logStart = 0;
    try {
      logStart = readFileSync(logPath).length;
    } catch {
      // a new log
    }
    // The image key next to the log, in a folder the daemon creates (never the node's /etc): a
    // daemon started again after a kill finds the same key and restores the images it signed.
    const imageKey = join(dirname(logPath), 'image-key', 'image.key');
    const args = [CKPT_DAEMON, '--spool-dir', spool, '--log', logPath, '--criu', CRIU, '--image-key', imageKey];
    const proc = new Proc(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const daemon = new FaultDaemon(proc, logPath, logStart);
    const pid = proc.child.pid as number;
    await waitUntil(
      () => daemon.log().includes(`serving ${spool} with the criu engine (PID ${pid})`) || proc.child.exitCode !== null,
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

  /** Waits (bounded) until this daemon logged a line matching PATTERN; returns the match. */
  async logged(pattern: RegExp, what: string, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    await waitUntil(() => pattern.test(this.log()), `${what}\ndaemon log:\n${this.log()}`, timeoutMs);
    return pattern.exec(this.log()) as RegExpMatchArray;
  }

  /** The criu processes the daemon runs now (each leads its own process group). */
  criuPids(): number[] {
    return childrenOf(this.pid).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('criu');
      } catch {
        return false;
      }
    });
  }

  /** SIGKILL to the daemon and to its criu's process group, at once; waits until all are gone. */
  async kill(): Promise<number[]> {
    const criu = this.criuPids();
    for (const pid of criu) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
    this.proc.child.kill('SIGKILL');
    await this.proc.exited;
    await waitUntil(() => criu.every(isGone), `criu ${criu.join(' ')} to be gone`);
    return criu;
  }

  /** SIGTERM: the daemon finishes what it serves and exits 0. */
  async stop(): Promise<number | null> {
    if (this.proc.child.exitCode !== null || this.proc.child.signalCode !== null) return this.proc.child.exitCode;
    this.proc.child.kill('SIGTERM');
    return this.proc.exitCode(60_000);
  }
}
