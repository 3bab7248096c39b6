/**
 * Full vs lazy restore of one image, side by side (root, criu with userfaultfd). A program holds
 * MIB mebibytes of random bytes (incompressible) and their SHA-256; it is dumped once with
 * ckpt-daemon's own CriuEngine, then restored ROUNDS times in each mode, alternating:
 *   running  restore asked → the restored program runs (criu restore -d returned)
 *   all in   restore asked → every page is in (full: the same; lazy: the lazy-pages server is done)
 * After each restore the program hashes all its memory again (SIGUSR1) and says whether it
 * matches: a restore that lost or damaged a page shows.
 * The engine is the one ckpt-daemon runs, from dist/ (built by `npm run build`, which `npm run
 * bench` runs first): the copy of src/ compiled into build/ looks for its criu action script
 * (scripts/criu-pre-resume-check.sh, found relative to the module) under build/, where there is none.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Criu from '../../src/engine/criu.js';
import { probeCriu } from '../../src/engine/criu-probe.js';
import type { Requester } from '../../src/protocol/spool-request.js';
import { now } from '../clock.js';
import { ROOT } from '../jobs.js';
import { killAll } from '../procfs.js';
import { formatValue, summarize } from '../stats.js';
import { waitUntil } from '../watch.js';

const PROGRAM = `
const { createHash, randomFillSync } = require('node:crypto');
const memory = Buffer.allocUnsafeSlow(Number(process.argv[2]) * 1024 * 1024);
for (let at = 0; at < memory.length; at += 1 << 30) randomFillSync(memory, at, Math.min(1 << 30, memory.length - at));
const hash = () => {
  const sha = createHash('sha256');
  for (let at = 0; at < memory.length; at += 1 << 30) sha.update(memory.subarray(at, at + (1 << 30)));
  return sha.digest('hex');
};
const expected = hash();
process.on('SIGUSR1', () => process.stdout.write(hash() === expected ? 'check ok\\n' : 'check BAD\\n'));
process.stdout.write('ready\\n');
setInterval(() => undefined, 1 << 30);
`;

/** The bench dumps and restores its own program as root: the images are root's. */
const ROOT_REQUESTER: Requester = { uid: 0, gid: 0, gids: [0], name: 'root' };

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

/** The program's output so far, a line each: its checks come one per SIGUSR1. */
const outputLines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []);
const checks = (file: string): string[] => outputLines(file).filter((line) => line.startsWith('check'));

/** One restore in ENGINE's mode, timed, then the memory checked; the restored program is killed after. */
async function restoreOnce(engine: Criu.CriuEngine, images: string, dir: string, out: string): Promise<{ pid: number; sample: RestoreSample }> {
  const scratchDir = mkdtempSync(join(dir, 'scratch-'));
  const asked = now();
  const tree = await engine.restore({ imagesDir: images, scratchDir, requester: ROOT_REQUESTER });
  const runningMs = now() - asked;
  try {
    if (tree.pagesIn) await tree.pagesIn;
    const allInMs = now() - asked;
    const checksBefore = checks(out).length;
    process.kill(tree.pid, 'SIGUSR1');
    await waitUntil(() => checks(out).length > checksBefore, { timeoutMs: 60_000, what: 'the checksum after the restore' });
    return { pid: tree.pid, sample: { runningMs, allInMs, checksumOk: checks(out)[checksBefore] === 'check ok' } };
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
  const out = join(dir, 'out.log');
  writeFileSync(join(dir, 'program.cjs'), PROGRAM);
  writeFileSync(out, '');
  const { CriuEngine } = (await import(pathToFileURL(join(ROOT, 'dist/engine/criu.js')).href)) as typeof Criu;
  const engines: Record<RestoreMode, Criu.CriuEngine> = {
    full: new CriuEngine(criu, { settings: { ...findings.settings, lazyPages: false } }),
    lazy: new CriuEngine(criu, { settings: { ...findings.settings, lazyPages: true } }),
  };
  const samples: Record<RestoreMode, RestoreSample[]> = { full: [], lazy: [] };
  let pid: number | undefined;
  try {
    // O_APPEND output: criu restores it whatever its size has become.
    const holder = spawn(process.execPath, [join(dir, 'program.cjs'), String(mib)], { detached: true, stdio: ['ignore', openSync(out, 'a'), openSync(out, 'a')], cwd: dir });
    holder.unref();
    pid = holder.pid;
    if (pid === undefined) throw new Error(`could not start the ${mib} MiB program`);
    progress(`restore modes: filling ${mib} MiB with random bytes`);
    await waitUntil(() => outputLines(out).includes('ready'), { timeoutMs: 120_000, what: `the ${mib} MiB program to be ready` });
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
