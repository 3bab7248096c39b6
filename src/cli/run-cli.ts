/** Shared by both commands: option parsers, and the rule "one line and a distinct code, never a stack trace". */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { CliError, ExitCode } from '../base/exit-codes.js';

export function secondsOption(value: string): number {
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds < 0) {
    throw new InvalidArgumentError('expected a number of seconds (0 or more)');
  }
  return seconds;
}

/** A size in MB (10^6 bytes, as every size ckpt-run prints), 0 or more; in bytes. */
export function megabytesOption(value: string): number {
  const megabytes = Number(value);
  if (value.trim() === '' || !Number.isFinite(megabytes) || megabytes < 0) {
    throw new InvalidArgumentError('expected a size in MB (0 or more)');
  }
  return Math.round(megabytes * 1e6);
}

const UNIT_BYTES: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** A size in bytes: "500M", "4G", "1.5T" (binary units), or bytes; in bytes. */
export function sizeOption(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(value.trim());
  if (!match) throw new InvalidArgumentError('expected a size: bytes, or a number with K, M, G or T');
  return Math.floor(Number(match[1]) * UNIT_BYTES[match[2].toLowerCase()]);
}

const UNIT_SECONDS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600 };

/** A duration of at least a second: "90" or "90s", "5m", "1.5h"; in seconds. */
export function durationOption(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([smh]?)$/.exec(value.trim());
  const seconds = match ? Number(match[1]) * UNIT_SECONDS[match[2]] : NaN;
  if (!(seconds >= 1)) throw new InvalidArgumentError('expected a duration of 1 s or more: seconds, or with s, m or h (90, 90s, 5m, 1.5h)');
  return seconds;
}

/** --dump-safety: a factor of 1 or more (1.5, 2, 3). */
export function factorOption(value: string): number {
  const factor = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(factor >= 1)) throw new InvalidArgumentError('expected a factor of 1 or more (1.5, 2, 3)');
  return factor;
}

export function wholeNumberOption(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number(value);
}

/** A signal option's parser: a name with or without SIG, any case; REFUSED cannot be ROLE. */
export function signalOption(refused: readonly string[], role: string): (value: string) => NodeJS.Signals {
  return (value) => {
    const name = (value.startsWith('SIG') ? value : `SIG${value}`).toUpperCase() as NodeJS.Signals;
    if (!(name in constants.signals)) throw new InvalidArgumentError(`unknown signal ${value}`);
    if (refused.includes(name)) throw new InvalidArgumentError(`${name} cannot be ${role}`);
    return name;
  };
}

/** The package's version, as the one copy installed on the node says it. */
function packageVersion(): string {
  const manifest = fileURLToPath(new URL('../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

export async function runCli(name: string, args: string[], build: () => Command | Promise<Command>): Promise<void> {
  const program = await build();
  program.version(packageVersion(), '-V, --version', 'print the version and exit');
  const configure = (command: Command): void => {
    command.exitOverride();
    command.configureOutput({ outputError: (text, write) => write(`${name}: ${text.replace(/^error: /, '')}`) });
    command.commands.forEach(configure);
  };
  configure(program);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with code 0.
      process.exitCode = error.exitCode === 0 ? 0 : ExitCode.Usage;
      return;
    }
    if (error instanceof CliError) {
      process.stderr.write(`${name}: error: ${error.message}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    const detail = process.env.CKPT_DEBUG ? (error as Error).stack : (error as Error).message;
    process.stderr.write(`${name}: internal error: ${detail} (set CKPT_DEBUG=1 for details; please report it)\n`);
    process.exitCode = ExitCode.Internal;
  }
}
