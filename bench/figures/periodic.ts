/**
 * A periodic checkpoint (ckpt-run --interval) of a program holding MIB mebibytes of random bytes
 * (memory-program.ts), ROUNDS times, with ckpt-daemon's own CriuEngine (from dist/, as in
 * restore-modes.ts) and --leave-running, as the daemon does it: how long the program was frozen
 * (criu's own count), how long the dump took, the images' size, and whether the program's memory
 * was intact afterwards, as it ran on. The baseline has no periodic checkpoints: its only dump
 * stops the program.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Criu from '../../src/engine/criu/criu.js';
import { probeCriu } from '../../src/engine/criu/criu-probe.js';
import { imagesBytes } from '../../src/protocol/run-dir.js';
import { now } from '../clock.js';
import { ROOT } from '../jobs.js';
import { killAll } from '../procfs.js';
import { formatValue, summarize } from '../stats.js';
import { memoryIntact, ROOT_REQUESTER, startMemoryProgram } from './memory-program.js';

export interface PeriodicSample {
  frozenMs: number;
  dumpMs: number;
  bytes: number;
  memoryOk: boolean;
}

export type PeriodicResult = { skipped: string } | { mib: number; samples: PeriodicSample[] };

export async function periodicCheckpoints({ mib, rounds, criu = 'criu', progress = () => undefined }: { mib: number; rounds: number; criu?: string; progress?: (message: string) => void }): Promise<PeriodicResult> {
  const findings = await probeCriu(criu);
  if (findings.problem) return { skipped: findings.problem };
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-periodic-'));
  const { CriuEngine } = (await import(pathToFileURL(join(ROOT, 'dist/engine/criu/criu.js')).href)) as typeof Criu;
  const engine = new CriuEngine(criu, { settings: findings.settings });
  let pid: number | undefined;
  try {
    progress(`periodic checkpoints: filling ${mib} MiB with random bytes`);
    const program = await startMemoryProgram(dir, mib);
    pid = program.pid;
    const samples: PeriodicSample[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      const images = join(dir, `images-${round}`);
      mkdirSync(images);
      const started = now();
      const { frozenMs } = await engine.dump({ pid, imagesDir: images, requester: ROOT_REQUESTER, leaveRunning: true });
      const dumpMs = now() - started;
      samples.push({ frozenMs: frozenMs ?? NaN, dumpMs, bytes: imagesBytes(images), memoryOk: await memoryIntact(pid, program.out) });
      // Each dump is a new full copy: only one is kept on disk at a time, as with --keep 1.
      rmSync(images, { recursive: true, force: true });
    }
    return { mib, samples };
  } finally {
    if (pid !== undefined) killAll([pid], 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export function periodicLines(result: PeriodicResult): string[] {
  if ('skipped' in result) return ['', `Periodic checkpoint (--interval) of one program: skipped (${result.skipped})`];
  const median = (key: 'frozenMs' | 'dumpMs' | 'bytes'): number => summarize(result.samples.map((sample) => sample[key]))?.median ?? NaN;
  const ok = result.samples.every((sample) => sample.memoryOk);
  return [
    '',
    `Periodic checkpoint (--interval, criu dump --leave-running) of a ${result.mib} MiB program, medians of ${result.samples.length}:`,
    `  program frozen ${formatValue(median('frozenMs'), 'ms')}, dump ${formatValue(median('dumpMs'), 'ms')}, images ${(median('bytes') / 2 ** 20).toFixed(0)} MiB; ` +
      `${ok ? 'the program ran on, its memory intact each time' : 'A MEMORY CHECK FAILED after a dump'} (baseline: no periodic checkpoints, its dump stops the program)`,
  ];
}
