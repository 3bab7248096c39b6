/**
 * The engines a job can choose (ckpt-run --engine), one line each, as each folder declares it
 * (link.ts: JobEngine). criu: the node's daemon dumps and restores the program (daemon-link/;
 * the daemon's own engines, criu/ and restart/, are ckpt-daemon's choice: daemon-registry.ts);
 * app: the program saves itself on a signal (app/).
 */
import { CliError, ExitCode } from '../base/exit-codes.js';
import { APP_ENGINE } from './app/job-engine.js';
import { DAEMON_LINK_ENGINE } from './daemon-link/job-engine.js';
import type { CheckpointLink, JobEngine, LinkContext } from './link.js';
import { optionName, type CommonOptions, type EngineOption, type GivenValue } from './options.js';

export const ENGINES = { criu: DAEMON_LINK_ENGINE, app: APP_ENGINE } satisfies Record<string, JobEngine>;

export type EngineName = keyof typeof ENGINES;

/** ckpt-run's engine when --engine is not given (the dry run's jobs, where the daemon makes the checkpoints). */
export const DEFAULT_ENGINE: EngineName = 'criu';

/** What the command line gave of OPTION (undefined: not given), read as its declaration says. */
export type GivenOption = (option: EngineOption) => GivenValue | undefined;

/** The engine a job chose, its settings bound in: the launcher carries it and never looks at them. */
export interface ChosenEngine extends Pick<JobEngine, 'usesDaemon' | 'programEnvironment'> {
  readonly name: EngineName;
  link(context: LinkContext): CheckpointLink;
}

/**
 * The engine NAME with its settings, from the options GIVEN: a CliError (exit 2) for an option of
 * another engine, or options of its own that do not go together.
 */
export function chooseEngine(name: EngineName, given: GivenOption, job: CommonOptions): ChosenEngine {
  for (const [other, engine] of Object.entries(ENGINES)) {
    const stray = other === name ? [] : Object.values(engine.options).filter((option) => given(option) !== undefined);
    if (stray.length) throw new CliError(`${stray.map(optionName).join(', ')}: only with --engine ${other} (add it, or drop the option)`, ExitCode.Usage);
  }
  const engine: JobEngine = ENGINES[name];
  const values = Object.fromEntries(Object.entries(engine.options).map(([key, option]) => [key, given(option)]));
  const settings = engine.settings(values, job);
  return { name, usesDaemon: engine.usesDaemon, programEnvironment: engine.programEnvironment, link: (context) => engine.link(settings, context) };
}
