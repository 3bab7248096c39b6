/**
 * The program the fault tests checkpoint: its progress lives only in memory, it holds a ballast
 * of MB megabytes (every page written, so a dump has that much to write), and it is steered by
 * files in its working directory, which it looks at on every tick:
 *   fault-ghost  open a 2 MB file and delete its name, keeping it open (CRIU's ghost-file
 *                limit is 1 MB: a dump from then on is refused);
 *   fault-stop   end now, with the exit code given.
 * It prints "I" (1, 2, …) on stdout per tick and ends by itself after COUNT lines. Before it
 * exits it checks that the ballast still holds what it wrote: a restore that damaged memory
 * ends it with code 86 instead of EXIT_CODE.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const GHOST_TRIGGER = 'fault-ghost';
export const STOP_TRIGGER = 'fault-stop';
export const BALLAST_DAMAGED = 86;

const SOURCE = `// Written by test/helpers/fault-program.ts: fault-program.mjs COUNT TICK_MS MB EXIT_CODE
import { existsSync, openSync, unlinkSync, writeSync } from 'node:fs';
const [count, tickMs, megabytes, exitCode] = process.argv.slice(2, 6).map(Number);
const MB = 1024 * 1024;
const ballast = Buffer.alloc(megabytes * MB, 0xa5);
let i = 0;
let ghost;

function ballastIntact() {
  const reference = Buffer.alloc(MB, 0xa5);
  for (let at = 0; at < ballast.length; at += MB) {
    if (!ballast.subarray(at, at + MB).equals(reference.subarray(0, Math.min(MB, ballast.length - at)))) return false;
  }
  return true;
}

function end(code) {
  const intact = ballastIntact();
  process.stderr.write(\`ballast \${intact ? 'intact' : 'DAMAGED'} (\${megabytes} MB)\\n\`);
  process.exit(intact ? code : ${BALLAST_DAMAGED});
}

function tick() {
  if (ghost === undefined && existsSync('${GHOST_TRIGGER}')) {
    ghost = openSync('fault-ghost.bin', 'w+');
    writeSync(ghost, Buffer.alloc(2 * MB, 1));
    unlinkSync('fault-ghost.bin');
    process.stderr.write('ghost file open: 2 MB, name deleted\\n');
  }
  if (existsSync('${STOP_TRIGGER}')) return end(exitCode);
  i += 1;
  process.stdout.write(\`\${i}\\n\`);
  if (i >= count) return end(exitCode);
  setTimeout(tick, tickMs);
}
tick();
`;

export interface FaultProgramOptions {
  count: number;
  tickMs: number;
  megabytes: number;
  exitCode: number;
}

/** Writes the program into DIR; returns the command line for ckpt-run (after `--`). */
export function faultProgram(dir: string, options: FaultProgramOptions): string[] {
  const path = join(dir, 'fault-program.mjs');
  writeFileSync(path, SOURCE);
  const { count, tickMs, megabytes, exitCode } = options;
  return [process.execPath, path, String(count), String(tickMs), String(megabytes), String(exitCode)];
}

/** The numbered lines in a piece of the program's output. */
export function numbers(output: string): number[] {
  return output
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** FROM, FROM+1, …, TO. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, k) => from + k);
}
