/**
 * The dry run's engines. simulate --engine names one of ckpt-run's engines that needs no daemon
 * (engine/registry.ts: app), for its jobs; or the engine its embedded daemon runs
 * (engine/daemon-registry.ts), behind ckpt-run's default engine: the one asked for, which must
 * work here, or for "auto" the first of the registry that works here (real CRIU where root has
 * a criu that dumps and restores the probe's canary), a fallback announced loudly with what it
 * does not show (the restart engine keeps no memory state).
 */
import { CliError, ExitCode } from '../base/exit-codes.js';
import { DAEMON_ENGINES, type DaemonEngineName } from '../engine/daemon-registry.js';
import type { CheckpointEngine } from '../engine/engine.js';
import { DEFAULT_ENGINE, ENGINES, type EngineName } from '../engine/registry.js';

/** ckpt-run's engines that need no daemon. */
const WITHOUT_DAEMON = (Object.keys(ENGINES) as EngineName[]).filter((name) => !ENGINES[name].usesDaemon);

/** What simulate --engine may name. */
export const ENGINE_REQUESTS = ['auto', ...Object.keys(DAEMON_ENGINES), ...WITHOUT_DAEMON];

/** The jobs' engine (ckpt-run --engine) for REQUEST, one of ENGINE_REQUESTS; DAEMON: what the daemon is asked to run, where the jobs' engine needs one. */
export function dryRunEngines(request: string): { job: EngineName; daemon?: 'auto' | DaemonEngineName } {
  const own = WITHOUT_DAEMON.find((name) => name === request);
  return own ? { job: own } : { job: DEFAULT_ENGINE, daemon: request as 'auto' | DaemonEngineName };
}

export interface EngineChoice {
  engine: CheckpointEngine;
  /** A loud line for the user when the choice changes what the simulation shows. */
  notice?: string;
}

/** The daemon's engine for REQUEST (criu: the criu command). */
export async function chooseDaemonEngine(request: 'auto' | DaemonEngineName, criu: string): Promise<EngineChoice> {
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
  // Only where every engine failed here (the restart engine never does).
  throw new CliError(`no engine can work here: ${unusable?.problem}`, ExitCode.Usage);
}
