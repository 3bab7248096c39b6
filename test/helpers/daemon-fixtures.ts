/** Real folders and processes for ckpt-daemon's tests: nothing mocked that the kernel can do. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Requester } from '../../src/protocol/spool-request.js';
import { ProcessHandle } from '../../src/proc/processes.js';
import { waitUntil } from './poll.js';
import { killAll } from './listed-processes.js';

export const AS_ROOT = process.getuid?.() === 0;

/** A uid that no account uses: a stranger's files and processes (chown, setpriv), as root. */
export const STRANGER = 4242;

export function requesterOf(uid: number, name = `user${uid}`): Requester {
  return { uid, gid: uid, gids: [uid], name };
}

export const SELF = requesterOf(process.getuid?.() ?? 0, 'self');

const cleanups: Array<() => void> = [];

/** Undoes what the helpers made (folders, processes); call it in afterEach. */
export function cleanUp(): void {
  while (cleanups.length) cleanups.pop()?.();
}

export function tempDir(prefix = 'ckpt-daemon-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Kills the session that PID leads when the test ends (a tree the test started or had restored). */
export function killAtCleanUp(pid: number): void {
  cleanups.push(() => killAll([-pid], 'SIGKILL'));
}

/**
 * Starts ARGV in a session of its own (as the root of a tree to dump), stdio on /dev/null
 * except for extra descriptors; the test's cleanup kills its whole session.
 */
export async function startTree(argv: string[], options: { cwd?: string; extraFd?: number } = {}): Promise<number> {
  const stdio = ['ignore', 'ignore', 'ignore', ...(options.extraFd === undefined ? [] : [options.extraFd])] as const;
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: [...stdio], cwd: options.cwd });
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid as number;
  killAtCleanUp(pid);
  child.unref();
  // Through setpriv, the tree has its final credentials once setpriv has run the program.
  await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8') !== 'setpriv\n', `PID ${pid} to leave setpriv`);
  return pid;
}

/** ARGV run by a stranger (uid and group STRANGER, no other group), through setpriv. */
export const asStranger = (argv: string[], setprivOptions: string[] = []): string[] => [
  'setpriv', `--reuid=${STRANGER}`, `--regid=${STRANGER}`, '--clear-groups', ...setprivOptions, ...argv,
];

export function isGone(pid: number): boolean {
  return !new ProcessHandle(pid).isAlive();
}
