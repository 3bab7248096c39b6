/** Runs bin/ckpt-run (and the fake daemon) as real processes, for the integration tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readStat } from '../../src/proc/processes.js';
import { processesWhere, procLink } from './listed-processes.js';
import { expect } from 'vitest';
import { waitUntil } from './poll.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CKPT_RUN = join(ROOT, 'bin/ckpt-run');
export const COUNTER = join(ROOT, 'examples/counter.sh');

export interface Sandbox {
  dir: string;
  spool: string;
  workdir: string;
}

export function makeSandbox(prefix = 'ckpt-it-'): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const spool = join(dir, 'spool');
  const workdir = join(dir, 'work');
  mkdirSync(spool);
  // mkdir's mode is cut by the umask: a spool dir must be world-writable (sticky) as on a node.
  chmodSync(spool, 0o1777);
  mkdirSync(workdir);
  return { dir, spool, workdir };
}

/** A running process whose output we can wait on, with a bound: no sleep-and-hope. */
export class Proc {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolveExit) => {
      child.on('close', (code, signal) => resolveExit({ code, signal }));
    });
  }

  waitFor(predicate: (proc: Proc) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return waitUntil(() => predicate(this), () => `${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`, timeoutMs, 10);
  }

  async exitCode(timeoutMs = 30_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs} ms\nstderr:\n${this.stderr}`)), timeoutMs);
    });
    try {
      return (await Promise.race([this.exited, timeout])).code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the exit and checks its code; a wrong code shows how the run's stderr ended (a CI log is all there is). */
  async expectExit(expected: number, timeoutMs?: number): Promise<void> {
    const code = await this.exitCode(timeoutMs);
    expect(code, `exit code; the run's stderr ended:\n${this.stderr.split('\n').slice(-40).join('\n')}`).toBe(expected);
  }
}

/** Who runs a job: an ordinary user's uid and gid (a cluster's jobs), or the test runner. */
export interface RunAs {
  uid?: number;
  gid?: number;
}

export function runCkpt(sandbox: Sandbox, args: string[], env: NodeJS.ProcessEnv = {}, as: RunAs = {}): Proc {
  const child = spawn(process.execPath, [CKPT_RUN, '--spool-dir', sandbox.spool, ...args], {
    cwd: sandbox.workdir,
    env: { ...process.env, OAR_JOB_ID: '', OAR_ARRAY_ID: '', CKPT_SPOOL_DIR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...as,
  });
  return new Proc(child);
}

/**
 * A sandbox whose work folder belongs to USER, as a job's folder on a cluster: the sandbox
 * searchable by all, the spool world-writable and sticky as on a node.
 */
export function makeUserSandbox(prefix: string, user: { uid: number; gid: number }): Sandbox {
  const sandbox = makeSandbox(prefix);
  chmodSync(sandbox.dir, 0o755);
  chownSync(sandbox.workdir, user.uid, user.gid);
  return sandbox;
}

/** Starts test/helpers/fake-daemon.sh on the sandbox's spool dir; stop() kills its whole group. */
export function startFakeDaemon(sandbox: Sandbox, knobs: Record<string, string> = {}): { proc: Proc; stop(): void } {
  const child = spawn('bash', [join(ROOT, 'test/helpers/fake-daemon.sh'), sandbox.spool], {
    env: { ...process.env, ...knobs },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return {
    proc: new Proc(child),
    stop() {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
}

/** A file's text, or FALLBACK while it does not exist (yet). */
export function readOr(path: string, fallback = ''): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** Lines printed by the counter, as numbers. */
export function counted(output: string): number[] {
  return output
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** The live processes (zombies excepted) whose working directory is DIR: what a job left running there. */
export function liveProcessesIn(dir: string): number[] {
  return processesWhere((pid) => {
    const state = readStat(pid)?.state;
    return procLink(pid, 'cwd') === dir && state !== undefined && state !== 'Z' && state !== 'X';
  });
}

/** The JSON summary that runSimulate asked for. */
export function summaryOf(workdir: string) {
  return JSON.parse(readFileSync(join(workdir, 'summary.json'), 'utf8'));
}

/** `ckpt-run simulate ARGS` in `workdir`, with a JSON summary written to `<workdir>/summary.json`. */
export function runSimulate(workdir: string, args: string[], as: RunAs = {}): Proc {
  const child = spawn(process.execPath, [CKPT_RUN, 'simulate', '--json', join(workdir, 'summary.json'), ...args], {
    cwd: workdir,
    env: { ...process.env, OAR_JOB_ID: '', OAR_ARRAY_ID: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...as,
  });
  return new Proc(child);
}
