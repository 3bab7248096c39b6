/**
 * Full vs lazy restore of one image, side by side (root, criu with userfaultfd). A program holds
 * MIB mebibytes of random bytes (memory-program.ts); it is dumped once with
 * ckpt-daemon's own CriuEngine, then restored ROUNDS times in each mode, alternating:
 *   running  restore asked → the restored program runs (criu restore -d returned)
 *   all in   restore asked → every page is in (full: the same; lazy: the lazy-pages server is done)
 * After each restore the program checks all its memory: a restore that lost or damaged a page shows.
 * The engine is the one ckpt-daemon runs, from dist/ (built by `npm run build`, which `npm run
 * bench` runs first): the copy of src/ compiled into build/ looks for its criu action script
 * (scripts/criu-pre-resume-check.sh, found relative to the module) under build/, where there is none.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Criu from '../../src/engine/criu/criu.js';
import { probeCriu } from '../../src/engine/criu/criu-probe.js';
import { now } from '../clock.js';
import { ROOT } from '../jobs.js';
import { killAll } from '../procfs.js';
import { formatValue, summarize } from '../stats.js';
import { waitUntil } from '../watch.js';
import { memoryIntact, ROOT_REQUESTER, startMemoryProgram } from './memory-program.js';

export type RestoreMode = 'full' | 'lazy';

export interface RestoreSample {
  runningMs: number;
  allInMs: number;
  checksumOk: boolean;
}

export type RestoreModesResult =
  | { skipped: string }
  | { mib: number; dumpMs: number; samples: Record<RestoreMode, RestoreSample[]> };

export interface RestoreModesOptions {
  mib: number;
  rounds: number;
  criu?: string;
  progress?: (message: string) => void;
}

/** One restore in ENGINE's mode, timed, then the memory checked; the restored program is killed after. */
async function restoreOnce(engine: Criu.CriuEngine, images: string, dir: string, out: string): Promise<{ pid: number; sample: RestoreSample }> {
  const scratchDir = mkdtempSync(join(dir, 'scratch-'));
  const asked = now();
  const tree = await engine.restore({ imagesDir: images, scratchDir, requester: ROOT_REQUESTER });
  const runningMs = now() - asked;
  try {
    if (tree.pagesIn) await tree.pagesIn;
    const allInMs = now() - asked;
    return { pid: tree.pid, sample: { runningMs, allInMs, checksumOk: await memoryIntact(tree.pid, out) } };
  } finally {
    killAll([tree.pid], 'SIGKILL');
    rmSync(scratchDir, { recursive: true, force: true });
  }
}

export async function restoreModes({ mib, rounds, criu = 'criu', progress = () => undefined }: RestoreModesOptions): Promise<RestoreModesResult> {
  const findings = await probeCriu(criu);
  if (findings.problem) return { skipped: findings.problem };
  if (!findings.userfaultfd) return { skipped: 'no userfaultfd on this node: lazy restore cannot run' };
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-restore-'));
  const { CriuEngine } = (await import(pathToFileURL(join(ROOT, 'dist/engine/criu/criu.js')).href)) as typeof Criu;
  const engines: Record<RestoreMode, Criu.CriuEngine> = {
    full: new CriuEngine(criu, { settings: { ...findings.settings, lazyPages: false } }),
    lazy: new CriuEngine(criu, { settings: { ...findings.settings, lazyPages: true } }),
  };
  const samples: Record<RestoreMode, RestoreSample[]> = { full: [], lazy: [] };
  let pid: number | undefined;
  try {
    progress(`restore modes: filling ${mib} MiB with random bytes`);
    const program = await startMemoryProgram(dir, mib);
    pid = program.pid;
    const { out } = program;
    const images = join(dir, 'images');
    mkdirSync(images);
    const dumpStarted = now();
    await engines.full.dump({ pid, imagesDir: images, requester: ROOT_REQUESTER });
    const dumpMs = now() - dumpStarted;
    progress(`restore modes: dumped in ${Math.round(dumpMs)} ms; ${rounds} rounds of full and lazy restores`);
    for (let round = 1; round <= rounds; round += 1) {
      for (const mode of round % 2 === 1 ? (['full', 'lazy'] as const) : (['lazy', 'full'] as const)) {
        // Every restore brings back the same PID: the last one's must have been reaped.
        await waitUntil(() => !existsSync(`/proc/${pid}`), { timeoutMs: 120_000, what: `PID ${pid} to be free for the next restore` });
        const restored = await restoreOnce(engines[mode], images, dir, out);
        samples[mode].push(restored.sample);
        pid = restored.pid;
      }
    }
    return { mib, dumpMs, samples };
  } finally {
    if (pid !== undefined) killAll([pid], 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The side-by-side table, with the targets of a lazy restore: running in 0.5 s, all in within a full restore's time. */
export function restoreModesLines(result: RestoreModesResult): string[] {
  if ('skipped' in result) return ['', `Restore of one image, full vs lazy: skipped (${result.skipped})`];
  const median = (mode: RestoreMode, key: 'runningMs' | 'allInMs'): number => summarize(result.samples[mode].map((run) => run[key]))?.median ?? NaN;
  const s = (ms: number): string => formatValue(ms, 'ms');
  const row = (mode: RestoreMode): string => {
    const runs = result.samples[mode];
    const ok = runs.every((run) => run.checksumOk);
    return `${mode.padEnd(6)} ${s(median(mode, 'runningMs')).padStart(9)} ${s(median(mode, 'allInMs')).padStart(9)}   ${ok ? `all ${runs.length} checksums right` : 'A CHECKSUM WAS WRONG'}`;
  };
  return [
    '',
    `Restore of one ${result.mib} MiB image (random bytes, dumped in ${s(result.dumpMs)}), full vs lazy, medians of ${result.samples.full.length} each:`,
    'mode     running    all in   memory',
    row('full'),
    row('lazy'),
    `target: lazy running <= 0.5 s: ${median('lazy', 'runningMs') <= 500 ? 'met' : 'MISSED'}; lazy all in <= full: ${median('lazy', 'allInMs') <= median('full', 'allInMs') ? 'met' : 'MISSED'}`,
  ];
}
