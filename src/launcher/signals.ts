/**
 * Signals, in and out: the scheduler's checkpoint signal and the termination signals become
 * events; a termination signal is passed on to the program, the shim's child.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { childrenOf, killAll, type ProcessHandle } from '../proc/processes.js';
import { signalTargets } from './decisions.js';
import { releaseSignal } from '../proc/early-signals.js';
import type { MachineEvent } from './machine-state.js';

const TERMINATION_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** How long a forwarded signal may wait for the shim to exec the program. */
const FORWARD_WAIT_MS = 2000;
const FORWARD_RETRY_MS = 5;

/**
 * Turns the signals into events until stop(). Returns how many checkpoint signals came before
 * (held since ckpt-run's first line, see early-signals.ts).
 */
export function listenToSignals(checkpointSignal: NodeJS.Signals, post: (event: MachineEvent) => void): { early: number; stop(): void } {
  const onCheckpoint = (): void => post({ type: 'checkpointSignal' });
  const onTerminate = (signal: NodeJS.Signals): void => post({ type: 'terminate', signal });
  process.on(checkpointSignal, onCheckpoint);
  for (const signal of TERMINATION_SIGNALS) process.on(signal, onTerminate);
  return {
    early: releaseSignal(checkpointSignal),
    stop() {
      process.removeListener(checkpointSignal, onCheckpoint);
      for (const signal of TERMINATION_SIGNALS) process.removeListener(signal, onTerminate);
    },
  };
}

function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Passes SIGNAL to the children of the shim SHIM, retrying (bounded) while it has not exec'd the program yet. */
export function forwardSignal(shim: ProcessHandle, signal: NodeJS.Signals, jobEnded: () => boolean, logger: Logger): void {
  const deadline = Date.now() + FORWARD_WAIT_MS;
  const attempt = (): void => {
    const targets = signalTargets({
      children: childrenOf(shim.pid).map((pid) => ({ pid, commandLine: commandLine(pid) })),
      shimCommandLine: commandLine(shim.pid),
      programAlive: !jobEnded() && shim.isAlive(),
      now: Date.now(),
      deadline,
    });
    if (targets.retry) {
      setTimeout(attempt, FORWARD_RETRY_MS);
      return;
    }
    logger.log('debug', `passing ${signal} to PID ${targets.pids.join(', ') || '(none)'} under ${shim.pid}`);
    killAll(targets.pids, signal);
  };
  attempt();
}
