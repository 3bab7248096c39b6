/**
 * An engine's own command-line options, as the engine declares them (its JobEngine.options,
 * link.ts): cli registers every engine's on ckpt-run and its dry run and hands the values given
 * back to the engine, whose settings() turns them into its settings. cli knows how to read each
 * kind of value, never which engine has which option.
 */

/** How an option's value is read: a signal (none of REFUSED, which cannot be ROLE), seconds (0 or more), a whole number. */
export type OptionValue = { kind: 'signal'; refused: readonly NodeJS.Signals[]; role: string } | { kind: 'seconds' } | { kind: 'wholeNumber' };

export interface EngineOption {
  /** As commander takes them: the name, and the value's placeholder ("--app-signal <name>"). */
  flags: string;
  help: string;
  /** How its value is read; none: a flag, given or not. */
  value?: OptionValue;
}

export type EngineOptions = Readonly<Record<string, EngineOption>>;

/** A value given: as READ says (a signal, a number), true for a flag. */
export type GivenValue<Read = OptionValue | undefined> = Read extends { kind: 'signal' } ? NodeJS.Signals : Read extends OptionValue ? number : true;

/** The values given of OPTIONS, by their keys in the declaration (undefined: not given). */
export type OptionValues<Options extends EngineOptions> = { readonly [Key in keyof Options]?: GivenValue<Options[Key]['value']> };

/** The job's options that an engine's own depend on. */
export interface CommonOptions {
  /** --signal: the scheduler's checkpoint signal. */
  checkpointSignal: NodeJS.Signals;
  /** --interval was given: periodic checkpoints. */
  interval: boolean;
}

/** The option's name, as the user types it and messages say it ("--app-signal"). */
export const optionName = (option: EngineOption): string => option.flags.split(' ')[0];
