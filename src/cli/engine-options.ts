/**
 * The engines' own options on ckpt-run and its dry run: registered as each engine declares them
 * (engine/options.ts, listed by engine/registry.ts), read here by the kind of their value, and
 * handed back to the engine as given. Which option is whose, and what it means, is the engine's.
 */
import { Command, Option, type OptionValues } from 'commander';
import type { EngineOption, OptionValue } from '../engine/options.js';
import { optionName } from '../engine/options.js';
import { ENGINES, type EngineName, type GivenOption } from '../engine/registry.js';
import { secondsOption, signalOption, wholeNumberOption } from './run-cli.js';

/** --engine's help: each engine in a few words. */
export const ENGINE_CHOICE_HELP = `${Object.entries(ENGINES)
  .map(([name, engine]) => `${name}: ${engine.summary}`)
  .join('; ')} (see Engines below)`;

/** The "Engines (--engine)" part of ckpt-run --help: each engine's lines, in the registry's order. */
export const ENGINES_HELP = `\nEngines (--engine)\n${Object.values(ENGINES).map((engine) => engine.help).join('')}`;

/** The parser for a kind of value: a kind added to engine/options.ts does not compile until it has one here. */
function parserOf(value: OptionValue): (text: string) => NodeJS.Signals | number {
  switch (value.kind) {
    case 'signal':
      return signalOption(value.refused, value.role);
    case 'seconds':
      return secondsOption;
    case 'wholeNumber':
      return wholeNumberOption;
  }
}

/** Adds every engine's options to COMMAND, in the registry's order and each engine's. */
export function addEngineOptions(command: Command): Command {
  for (const option of Object.values(ENGINES).flatMap((engine) => Object.values<EngineOption>(engine.options))) {
    const added = new Option(option.flags, option.help);
    command.addOption(option.value ? added.argParser(parserOf(option.value)) : added);
  }
  return command;
}

/** What commander's parsed OPTIONS hold of an engine's option. */
export const givenIn =
  (options: OptionValues): GivenOption =>
  (option) =>
    options[new Option(option.flags).attributeName()];

/** The options of engine NAME that were given, again as arguments for a ckpt-run job (the dry run starts real jobs). */
export function engineArguments(name: EngineName, given: GivenOption): string[] {
  return Object.values<EngineOption>(ENGINES[name].options).flatMap((option) => {
    const value = given(option);
    if (value === undefined) return [];
    return option.value ? [optionName(option), String(value)] : [optionName(option)];
  });
}
