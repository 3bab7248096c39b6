/**
 * The "restart" engine: no CRIU, for users without root and for the local dry run. A dump
 * records the tree root's command line, working directory and environment, then kills the
 * tree (its session); a restore starts that command again, detached in a new session with
 * stdin from /dev/null (ckpt-run's shim reopens its own output files, in append mode).
 * Documented limitation: no memory state is kept, so the program starts over from the
 * beginning unless it saves and reloads its own progress.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessHandle } from '../proc/process-liveness.js';
import { EngineError, type CheckpointEngine, type DumpTarget, type RestoreTarget } from './engine.js';

/** How long a killed tree's root may take to disappear before the dump counts as failed. */
const KILL_WAIT_MS = 10_000;

export class RestartEngine implements CheckpointEngine {
  readonly name = 'restart';

  async dump({ pid, imagesDir }: DumpTarget): Promise<void> {
    const handle = new ProcessHandle(pid);
    try {
      writeFileSync(join(imagesDir, 'cmdline'), readFileSync(`/proc/${pid}/cmdline`));
      writeFileSync(join(imagesDir, 'environ'), readFileSync(`/proc/${pid}/environ`));
      writeFileSync(join(imagesDir, 'cwd'), readlinkSync(`/proc/${pid}/cwd`));
    } catch (error) {
      throw new EngineError(`cannot record process ${pid}: ${(error as Error).message}`, false);
    }
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // not a session/group leader: kill the root alone
      process.kill(pid, 'SIGKILL');
    }
    const deadline = Date.now() + KILL_WAIT_MS;
    while (handle.isAlive()) {
      if (Date.now() > deadline) throw new EngineError(`process ${pid} survived SIGKILL for ${KILL_WAIT_MS / 1000} s`, true);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async restore({ imagesDir, requester }: RestoreTarget): Promise<number> {
    const nulSeparated = (name: string): string[] =>
      readFileSync(join(imagesDir, name), 'utf8').split('\0').filter(Boolean);
    const [command, ...args] = nulSeparated('cmdline');
    const env = Object.fromEntries(nulSeparated('environ').map((entry) => {
      const at = entry.indexOf('=');
      return [entry.slice(0, at), entry.slice(at + 1)];
    }));
    // A root daemon starts the program as the requester, never as root.
    const asRequester = process.getuid?.() === 0 ? { uid: requester.uid, gid: requester.gid } : {};
    const child = spawn(command, args, {
      cwd: readFileSync(join(imagesDir, 'cwd'), 'utf8'),
      env,
      detached: true,
      stdio: 'ignore',
      ...asRequester,
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(new EngineError(`cannot start ${command}: ${error.message}`, false)));
    });
    child.unref();
    return child.pid as number;
  }
}
