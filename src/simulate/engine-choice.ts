/**
 * Which engine the dry run uses: real CRIU when it can work here (root, and a criu that dumps and
 * restores the probe's canary, in the mode the probe found: src/engine/criu/criu-probe.ts), else the restart engine, announced loudly because it keeps no memory state.
 */
import { CliError, ExitCode } from '../base/exit-codes.js';
import { CriuEngine } from '../engine/criu/criu.js';
import { probeCriu } from '../engine/criu/criu-probe.js';
import type { CheckpointEngine } from '../engine/engine.js';
import { RestartEngine } from '../engine/restart/restart.js';

export type EngineRequest = 'auto' | 'criu' | 'restart';

export interface EngineChoice {
  engine: CheckpointEngine;
  /** A loud line for the user when the choice changes what the simulation shows. */
  notice?: string;
}

export async function chooseEngine(request: EngineRequest, criu: string): Promise<EngineChoice> {
  if (request === 'restart') return { engine: new RestartEngine() };
  const findings = await probeCriu(criu);
  const { problem } = findings;
  if (!problem) return { engine: new CriuEngine(criu, { settings: findings.settings }) };
  if (request === 'criu') throw new CliError(`the criu engine cannot work here: ${problem}`, ExitCode.Usage);
  return {
    engine: new RestartEngine(),
    notice:
      `NOTICE: real CRIU is not usable (${problem}). This is a SIMULATION with the restart ` +
      'engine: each "restore" starts the program again from the beginning and keeps no memory ' +
      'state. It tests the job script and the signal/resubmission loop, not the checkpoint itself.',
  };
}
