/**
 * The node-level faults the fault tests cause for real (root): a small filesystem that fills
 * up, a PID taken by another process, a job killed at walltime; and the observations they
 * make: a checkpoint's identity, the run's state, what is left in the spool.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll } from '../../src/proc/processes.js';
import { loadRunState, type RunState } from '../../src/state/run-state.js';
import { isGone } from './daemon-fixtures.js';
import { waitUntil } from './poll.js';
import type { Proc } from './launcher-harness.js';
import { processesWhere, procLink } from './listed-processes.js';

// ---- a small tmpfs ----

export function mountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'ckpt-fault-tmpfs', dir], { stdio: 'pipe' });
}

/** Changes the size limit of a mounted tmpfs (it may not go below what is used). */
export function resizeTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-o', `remount,size=${bytes}`, dir], { stdio: 'pipe' });
}

export function filesystemUsage(dir: string): { size: number; used: number; free: number } {
  const stats = statfsSync(dir);
  return { size: stats.blocks * stats.bsize, used: (stats.blocks - stats.bfree) * stats.bsize, free: stats.bavail * stats.bsize };
}

export function isMountPoint(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}

export function unmount(dir: string): void {
  if (isMountPoint(dir)) execFileSync('umount', [dir], { stdio: 'pipe' });
}

// ---- a PID taken ----

export interface PidHolder {
  pid: number;
  /** How many forks it took to land on that PID. */
  tries: number;
  /** Kills the holder and waits until the PID is free again (reaped). */
  release(): Promise<void>;
}

/**
 * Occupies PID with a sleeping process: writes PID-1 to /proc/sys/kernel/ns_last_pid and forks
 * at once, again until the fork gets exactly PID (other forks on the node can come between).
 * The forking bash stays the sleeper's parent, so the sleeper is reaped the moment it is killed.
 * Then the node's next PID is after NEXT_AFTER (by default PID): a dumped tree's thread IDs
 * follow its root's, and the processes forked next on the node would take them.
 */
export async function occupyPid(pid: number, nextAfter = pid, timeoutMs = 20_000): Promise<PidHolder> {
  await waitUntil(() => !pidExists(pid), `PID ${pid} to be free (reaped)`, timeoutMs);
  const script =
    'target=$1; tries=0; ' +
    'while [ "$tries" -lt 20000 ]; do tries=$((tries + 1)); ' +
    'echo $((target - 1)) > /proc/sys/kernel/ns_last_pid; sleep 100000 & got=$!; ' +
    'if [ "$got" = "$target" ]; then echo "$2" > /proc/sys/kernel/ns_last_pid; echo "holding $got after $tries tries"; wait; exit 0; fi; ' +
    'kill -KILL "$got"; wait "$got" 2>/dev/null; done; echo "gave up after $tries tries"; exit 1';
  const holder: ChildProcess = spawn('bash', ['-c', script, 'occupy-pid', String(pid), String(nextAfter)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  holder.stdout?.on('data', (chunk: Buffer) => (said += chunk.toString()));
  const exited = new Promise<void>((resolve) => holder.once('exit', () => resolve()));
  await waitUntil(() => /holding|gave up/.test(said) || holder.exitCode !== null, `a process to take PID ${pid}`, timeoutMs);
  const match = /holding (\d+) after (\d+) tries/.exec(said);
  if (!match) throw new Error(`could not occupy PID ${pid}: ${said}`);
  return {
    pid,
    tries: Number(match[2]),
    async release() {
      killAll([pid], 'SIGKILL');
      await exited;
      await waitUntil(() => !pidExists(pid), `PID ${pid} to be free again`);
    },
  };
}

/** Whether PID is in use at all (a zombie, not yet reaped, still holds it). */
export function pidExists(pid: number): boolean {
  try {
    statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

// ---- a job killed at walltime ----

/**
 * What OAR does at walltime: SIGKILL to the job (ckpt-run) and to the program's tree (its
 * session; for a tree in its own PID namespace, killing the namespace's init kills them all).
 */
export async function killAtWalltime(job: Proc, treeRoot: number): Promise<void> {
  job.child.kill('SIGKILL');
  killAll([-treeRoot, treeRoot], 'SIGKILL');
  await job.exited;
  await waitUntil(() => isGone(treeRoot), `the program's tree (PID ${treeRoot}) to be killed`);
}

/**
 * SIGKILLs every process whose working directory is DIR or under it (the programs' trees and
 * the jobs run there), and waits until they are gone: what a failed test leaves behind, and what
 * keeps a filesystem busy. Returns how many there were.
 */
export async function killProcessesUnder(dir: string): Promise<number> {
  const under = (): number[] =>
    processesWhere((pid) => {
      const cwd = procLink(pid, 'cwd');
      return cwd !== undefined && (cwd === dir || cwd.startsWith(`${dir}/`));
    });
  const found = under();
  killAll(found, 'SIGKILL');
  await waitUntil(() => under().every(isGone), `the processes under ${dir} to be gone`);
  return found.length;
}

// ---- observations ----

/**
 * A checkpoint's identity: checkpoint_ok's inode and mtime, and every image's name, inode,
 * size and mtime. Equal identities: nothing of the checkpoint was replaced, rewritten or removed.
 */
export function checkpointIdentity(runDir: string): string[] {
  const id = (path: string): string => {
    const stats = statSync(path, { bigint: true });
    return `${stats.ino}:${stats.size}:${stats.mtimeNs}`;
  };
  const images = join(runDir, 'checkpoint');
  return [
    `checkpoint_ok ${id(join(runDir, 'checkpoint_ok'))}`,
    ...readdirSync(images)
      .filter((name) => name !== 'pidfile') // the daemon's answer to the last restore, not an image
      .sort()
      .map((name) => `checkpoint/${name} ${id(join(images, name))}`),
  ];
}

/** The thread IDs of the checkpoint's tree: criu writes a core-TID.img per thread. */
export function checkpointThreadIds(runDir: string): number[] {
  return readdirSync(join(runDir, 'checkpoint'))
    .map((name) => /^core-(\d+)\.img$/.exec(name)?.[1])
    .filter((id): id is string => id !== undefined)
    .map(Number);
}

/** The run's state.json, read as ckpt-run reads it. */
export function runState(runDir: string): RunState {
  const state = loadRunState(join(runDir, 'state.json'));
  if (!state) throw new Error(`no state.json in ${runDir}`);
  return state;
}

/**
 * What a job may leave in the spool: nothing but the daemon's own files. Any request
 * (`*.checkpoint`, `*.resume`) or temp file (`.*.tmp`) is an orphan.
 */
export function spoolLeftovers(spool: string): string[] {
  return readdirSync(spool).filter((name) => name !== 'ckpt-daemon.heartbeat' && name !== '.ckpt-daemon');
}

/** Creates a (trigger) file. */
export function touch(path: string): void {
  writeFileSync(path, '');
}
