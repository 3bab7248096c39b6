/**
 * The "restart" engine: no CRIU, for users without root and for the local dry run. A dump
 * records the tree root's command line, working directory and environment, then stops the
 * tree (SIGTERM, then SIGKILL after a grace period); a restore starts that command again, detached in a new session with
 * stdin from /dev/null (ckpt-run's shim reopens its own output files, in append mode).
 * Documented limitation: no memory state is kept, so the program starts over from the
 * beginning unless it saves and reloads its own progress.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asUserArgv } from '../../proc/as-user.js';
import { hasEnded, killAll, ProcessHandle, readOrEmpty, sleep, treeOf } from '../../proc/processes.js';
import { EngineError, type CheckpointEngine, type DumpFigures, type DumpTarget, type RestoredTree, type RestoreTarget } from '../engine.js';

/** How long the program may take to save its own state and exit after SIGTERM. */
const STOP_GRACE_MS = 10_000;
/** How long a killed tree may take to disappear before the dump counts as failed. */
const KILL_WAIT_MS = 10_000;

async function allGone(handles: ProcessHandle[], withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (handles.some((handle) => handle.isAlive())) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/**
 * Whether a read of /proc/PID failed because the process ended or is ending: gone (ESRCH,
 * ENOENT), a zombie, or EACCES from a process whose memory is already released (the kernel then
 * shows its /proc files as root's, so a user's dry run may no longer read them; its status, which
 * anyone may read, has no Vm lines left). A live setuid program's EACCES stays a failure.
 */
function endedOrEnding(pid: number, error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ESRCH' || code === 'ENOENT') return true;
  if (hasEnded(pid)) return true;
  return code === 'EACCES' && !/^VmRSS:/m.test(readOrEmpty(`/proc/${pid}/status`));
}

/**
 * SIGTERM first, like a scheduler's polite stop: a program that checkpoints itself saves its
 * progress and exits (what this engine is useful for); SIGKILL after the grace period.
 */
async function stopTree(pid: number): Promise<void> {
  const tree = treeOf(pid);
  const handles = tree.map((member) => new ProcessHandle(member));
  killAll(tree, 'SIGTERM');
  if (await allGone(handles, STOP_GRACE_MS)) return;
  killAll(tree, 'SIGKILL');
  if (!(await allGone(handles, KILL_WAIT_MS))) {
    throw new EngineError(`process tree ${pid} survived SIGKILL for ${KILL_WAIT_MS / 1000} s`, true);
  }
}

export class RestartEngine implements CheckpointEngine {
  readonly name = 'restart';
  readonly keepsNoMemory = true;

  async dump({ pid, imagesDir, leaveRunning }: DumpTarget): Promise<DumpFigures> {
    try {
      writeFileSync(join(imagesDir, 'cmdline'), readFileSync(`/proc/${pid}/cmdline`));
      writeFileSync(join(imagesDir, 'environ'), readFileSync(`/proc/${pid}/environ`));
      writeFileSync(join(imagesDir, 'cwd'), readlinkSync(`/proc/${pid}/cwd`));
    } catch (error) {
      // Ended between the request and this read: the same words as a dump of a program already
      // gone, which the job and the dry run know is no failure of the checkpoint.
      if (endedOrEnding(pid, error)) throw new EngineError(`no process ${pid} on this node (it ended during the checkpoint)`, false);
      throw new EngineError(`cannot record process ${pid}: ${(error as Error).message}`, false);
    }
    // Nothing is frozen: the command line is all a restart keeps.
    if (!leaveRunning) await stopTree(pid);
    return {};
  }

  async restore({ imagesDir, requester }: RestoreTarget): Promise<RestoredTree> {
    const nulSeparated = (name: string): string[] =>
      readFileSync(join(imagesDir, name), 'utf8').split('\0').filter(Boolean);
    const [command, ...args] = nulSeparated('cmdline');
    const env = Object.fromEntries(nulSeparated('environ').map((entry) => {
      const at = entry.indexOf('=');
      return [entry.slice(0, at), entry.slice(at + 1)];
    }));
    // A root daemon starts the program as the requester, never as root, and through setpriv
    // (proc/as-user.ts: the requester could otherwise stop the child before its exec, and with it
    // the daemon). A program that cannot be started then ends at once (setpriv's exit 127)
    // instead of failing the restore here.
    const argv = process.getuid?.() === 0 ? asUserArgv(requester, [command, ...args]) : [command, ...args];
    const child = spawn(argv[0], argv.slice(1), {
      cwd: readFileSync(join(imagesDir, 'cwd'), 'utf8'),
      env,
      detached: true,
      stdio: 'ignore',
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(new EngineError(`cannot start ${command}: ${error.message}`, false)));
    });
    child.unref();
    return { pid: child.pid as number };
  }
}
