/**
 * Starts the user's program the way CRIU can dump and restore it:
 *  - detached in its own session (setsid), stdin from /dev/null, so no terminal or pipe of the
 *    job belongs to the tree (a pipe makes CRIU fail with "External socket is used");
 *  - stdout/stderr appended (by the shim) to files in the run directory that nothing else writes, because
 *    CRIU refuses to restore a regular file whose size changed after the dump, except O_APPEND;
 *  - under a tiny sh shim at the root of the tree that records the program's exit status in a
 *    file, because a restored tree has no parent that can wait for it;
 *  - optionally as the init of its own PID namespace, so that a restore never collides with a
 *    PID already in use on the node (or with dumped PIDs the node's init has not reaped yet);
 *  - its start time first in the run directory (program_started): the daemon carries what its
 *    user made in the node's own folders since then with each checkpoint (protocol/local-state.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { writeFileAtomic } from '../protocol/atomic-write.js';
import type { RunDirPaths } from '../protocol/run-dir.js';
import { childrenOf, sleep } from './processes.js';

/**
 * The shim: point its own stdout/stderr at the run's logs (O_APPEND), run the program, then
 * publish the exit status atomically. It opens the logs itself so that `unshare`, which stays
 * outside the dumped tree, keeps the job's stderr for its own messages. A SIGTERM to the shim
 * itself means the tree is being stopped from outside to be restarted later (the restart
 * engine's "dump"): the program's end is then not its final status, so none is written.
 * A program that dies of a signal makes sh report it ("Terminated", "Killed") on the shell's
 * own stderr, at every stop of the restart engine and every SIGTERM passed on: ckpt-run logs the
 * program's exit code itself, so while the shim waits its stderr is /dev/null, and the program
 * gets the log as its stderr in a subshell (a redirection on a simple command would be the
 * waiting shell's too, and dash reports there). The subshell, which keeps no trap, execs the
 * program in place: the program stays the shim's child, and a shell builtin stays one.
 * The signal numbers in $4 (space-separated; "-": none, never an empty word, which the restart
 * engine's replay of the command line would drop) are ones the shim survives (an empty trap, which
 * the subshell resets to the default): the application engine's save signals, sent to the whole
 * process group, shim included; the shim then records the program's exit as usual (sh runs a trap
 * only once its child ended).
 */
const SHIM =
  'exec >>"$1" 2>>"$2"; status=$3; survives=$4; shift 4; trap "stopped=1" TERM; [ "$survives" = - ] || trap : $survives; ' +
  '{ ( "$@" ) 2>&3 3>&-; code=$?; } 3>&2 2>/dev/null; ' +
  '[ -n "${stopped:-}" ] || { printf "%s\\n" "$code" > "$status.tmp" && mv -f "$status.tmp" "$status"; }; exit "$code"';

export interface ProgramTree {
  /** The PID to dump: the shim at the root of the tree (in the node's PID namespace). */
  rootPid: number;
  /** The process ckpt-run spawned (the shim, or `unshare` around it). */
  child: ChildProcess;
}

export interface SpawnTreeOptions {
  argv: string[];
  paths: RunDirPaths;
  cwd: string;
  env: NodeJS.ProcessEnv;
  pidNamespace: boolean;
  /** Signals the shim must survive (see SHIM). */
  survives?: NodeJS.Signals[];
}

export async function spawnProgramTree(options: SpawnTreeOptions): Promise<ProgramTree> {
  const { argv, paths, pidNamespace } = options;
  const survives = options.survives?.length ? options.survives.map((signal) => constants.signals[signal]).join(' ') : '-';
  const shimArgv = ['sh', '-c', SHIM, 'ckpt-run-shim', paths.stdoutLog, paths.stderrLog, paths.exitStatus, survives, ...argv];
  const fullArgv = pidNamespace ? ['unshare', '--pid', '--fork', 'setsid', ...shimArgv] : shimArgv;
  writeFileAtomic(paths.programStarted, `${Date.now()}\n`);
  const child = spawn(fullArgv[0], fullArgv.slice(1), {
    cwd: options.cwd,
    // Node programs use io_uring by default, which CRIU cannot dump.
    env: { ...options.env, UV_USE_IO_URING: '0' },
    detached: true,
    // unshare's own stderr is kept for error messages: after a dump it reports the killed
    // child ("sigprocmask unblock failed"), which is noise in the job's output.
    stdio: ['ignore', 'ignore', pidNamespace ? 'pipe' : 'inherit'],
  });
  let unshareErrors = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    unshareErrors = (unshareErrors + chunk.toString()).slice(-2000);
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid as number;
  let rootPid = pid;
  if (pidNamespace) {
    try {
      rootPid = await firstChildOf(pid);
    } catch (error) {
      throw new Error(`${(error as Error).message}${unshareErrors ? `: ${unshareErrors.trim()}` : ''}`);
    }
  }
  return { rootPid, child };
}

/** unshare forks the namespace's init right after it starts; wait (bounded) until it has. */
async function firstChildOf(pid: number): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const [first] = childrenOf(pid);
    if (first !== undefined) return first;
    if (!existsSync(`/proc/${pid}`)) throw new Error(`unshare (PID ${pid}) exited before starting the program`);
    if (Date.now() > deadline) throw new Error(`unshare (PID ${pid}) did not start the program within 5 s`);
    await sleep(2);
  }
}
