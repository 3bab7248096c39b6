/**
 * The schedulers ckpt-run knows, one entry each, tried in this order: the first whose detect()
 * recognises the job's environment is the job's scheduler (none: NO_SCHEDULER). The node's
 * daemon asks the entries with a node side (their cgroups) about a job id. A new scheduler is a
 * folder of its own beside oar/ and slurm/ exporting a SchedulerAdapter, and one line here.
 */
import { OAR } from './oar/oar.js';
import { NO_SCHEDULER, type NodeSide, type SchedulerAdapter, type SchedulerContext } from './scheduler.js';
import { SIMULATED } from './simulated.js';
import { SLURM } from './slurm/slurm.js';

export const SCHEDULERS: readonly SchedulerAdapter[] = [OAR, SLURM, SIMULATED];

/** The job's scheduler, from its environment (ENV) and ckpt-run's parent (PPID). */
export function detectScheduler(env: NodeJS.ProcessEnv, ppid: number): SchedulerContext {
  for (const scheduler of SCHEDULERS) {
    const context = scheduler.detect(env, ppid);
    if (context) return context;
  }
  return NO_SCHEDULER;
}

/** The schedulers that place their jobs in cgroups of their own on the node, with their names. */
export const NODE_SIDES: ReadonlyArray<{ name: string; node: NodeSide }> = SCHEDULERS.flatMap(({ name, node }) => (node ? [{ name, node }] : []));
