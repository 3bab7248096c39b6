/**
 * The dry run's simulated scheduler (`ckpt-run simulate`): before each checkpoint signal it
 * writes why it sends it (its simulated walltime, a preemption, a person's `kill -USR2`) into the
 * file that SIMULATED_STOP_ENV names, so that its jobs log what it simulates, not a guess.
 */
import { readFileSync } from 'node:fs';
import { NO_SCHEDULER, type SchedulerAdapter, type SchedulerContext } from './scheduler.js';
import type { StopFacts, StopReason } from './stop-reason.js';

export const SIMULATED_STOP_ENV = 'CKPT_RUN_SIMULATED_STOP';

const SAID: ReadonlyArray<Exclude<StopReason, 'crash'>> = ['walltime', 'preemption', 'manual'];

/** What the dry run says of the stop, read from FILE (nothing while it has not written it). */
export function simulatedStopFacts(file: string): StopFacts {
  let text = '';
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    return {};
  }
  const said = SAID.find((reason) => reason === text);
  return said ? { said, source: "the dry run's simulated scheduler says so" } : {};
}

function detectSimulated(env: NodeJS.ProcessEnv): SchedulerContext | undefined {
  const file = env[SIMULATED_STOP_ENV];
  if (!file) return undefined;
  // No scheduler, for all else (a local run: no shared filesystem, no resubmission rule); only the reason is the dry run's.
  return { ...NO_SCHEDULER, knownFacts: undefined, stopFacts: async () => simulatedStopFacts(file) };
}

export const SIMULATED: SchedulerAdapter = { name: 'simulated', detect: detectSimulated };
