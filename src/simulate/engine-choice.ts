/**
 * Which of the daemon's engines (engine/daemon-registry.ts) the dry run embeds: the one asked
 * for, which must work here; or, for "auto", the first of the registry that works here (real
 * CRIU where root has a criu that dumps and restores the probe's canary), a fallback announced
 * loudly with what it does not show (the restart engine keeps no memory state).
 */
import { CliError, ExitCode } from '../base/exit-codes.js';
import { DAEMON_ENGINES, type DaemonEngineName } from '../engine/daemon-registry.js';
import type { CheckpointEngine } from '../engine/engine.js';

export type EngineRequest = 'auto' | DaemonEngineName;

export interface EngineChoice {
  engine: CheckpointEngine;
  /** A loud line for the user when the choice changes what the simulation shows. */
  notice?: string;
}

export async function chooseEngine(request: EngineRequest, criu: string): Promise<EngineChoice> {
  if (request !== 'auto') {
    const built = await DAEMON_ENGINES[request].forDryRun(criu);
    if ('problem' in built) throw new CliError(`the ${request} engine cannot work here: ${built.problem}`, ExitCode.Usage);
    return built;
  }
  let unusable: { title: string; problem: string } | undefined;
  for (const [name, entry] of Object.entries(DAEMON_ENGINES)) {
    const built = await entry.forDryRun(criu);
    if ('problem' in built) {
      unusable ??= { title: entry.title, problem: built.problem };
      continue;
    }
    if (!unusable) return built;
    const shows = entry.limits ? `: ${entry.limits}` : '';
    return { ...built, notice: `NOTICE: ${unusable.title} is not usable (${unusable.problem}). This is a SIMULATION with the ${name} engine${shows}.` };
  }
  throw new CliError(`no engine can work here: ${unusable?.problem}`, ExitCode.Usage);
}
