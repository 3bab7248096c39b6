/**
 * Keeping the content of a file changed in place (protocol/kept-files.ts): a program holds a
 * MIB-mebibyte file open for writing (random bytes), and between two periodic checkpoints 1 % of
 * it changes (random 4-KiB pages, as a database's or an HDF5 file's updates land). Each dump
 * goes through ckpt-daemon's own CriuEngine (from dist/) with the run folder given, so that the
 * action script runs the keep tool while the tree is frozen, as the daemon does it. The first
 * dump writes the file's base (a full copy); each next one only the changed blocks: the figure is
 * those next dumps' frozen time, the keep tool's share of it, and the bytes kept.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readlinkSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes, randomFillSync, randomInt } from 'node:crypto';
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
import { ROOT_REQUESTER } from './memory-program.js';

export interface KeptSample {
  frozenMs: number;
  keepMs: number;
  keptBytes: number;
  dumpMs: number;
}

export type KeptResult = { skipped: string } | { mib: number; firstKeepMs: number; samples: KeptSample[] };

const PAGE = 4096;

/** Fills PATH with MIB mebibytes of random bytes. */
function fill(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.allocUnsafe(1 << 20);
  try {
    for (let i = 0; i < mib; i++) writeSync(fd, randomFillSync(chunk));
  } finally {
    closeSync(fd);
  }
}

/** Rewrites 1 % of PATH's 4-KiB pages, at random. */
function changeOnePercent(path: string, mib: number): void {
  const pages = (mib << 20) / PAGE;
  const fd = openSync(path, 'r+');
  try {
    for (let i = 0; i < pages / 100; i++) writeSync(fd, randomBytes(PAGE), 0, PAGE, randomInt(pages) * PAGE);
  } finally {
    closeSync(fd);
  }
}

export async function keptFiles({ mib, rounds, criu = 'criu', progress = () => undefined }: { mib: number; rounds: number; criu?: string; progress?: (message: string) => void }): Promise<KeptResult> {
  const findings = await probeCriu(criu);
  if (findings.problem) return { skipped: findings.problem };
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-kept-'));
  const { CriuEngine } = (await import(pathToFileURL(join(ROOT, 'dist/engine/criu/criu.js')).href)) as typeof Criu;
  const engine = new CriuEngine(criu, { settings: findings.settings, keepFilesMax: 2 * (mib << 20) });
  const file = join(dir, 'data.bin');
  let pid: number | undefined;
  try {
    progress(`kept files: filling a ${mib} MiB file`);
    fill(file, mib);
    const holder = spawn(process.execPath, ['-e', "require('node:fs').openSync(process.argv[1], 'r+'); setInterval(() => undefined, 1 << 30)", file], { detached: true, stdio: 'ignore', cwd: dir });
    holder.unref();
    const holderPid = holder.pid;
    if (holderPid === undefined) throw new Error('could not start the program that holds the file');
    pid = holderPid;
    // Dumped before it opened the file, it would hold nothing to keep.
    const holds = (): boolean => readdirSync(`/proc/${holderPid}/fd`).some((fd) => readlinkSync(`/proc/${holderPid}/fd/${fd}`) === file);
    await waitUntil(holds, { timeoutMs: 30_000, what: 'the program to open the file' });
    const samples: KeptSample[] = [];
    let firstKeepMs = NaN;
    // The run folder keeps the last checkpoint's images as "checkpoint", as the daemon does: the next dump compares with its base.
    for (let round = 0; round <= rounds; round += 1) {
      if (round > 0) changeOnePercent(file, mib);
      const images = join(dir, `checkpoint.new-${round}`);
      mkdirSync(images);
      const started = now();
      const { frozenMs, kept } = await engine.dump({ pid, imagesDir: images, requester: ROOT_REQUESTER, leaveRunning: true, runDir: dir });
      const dumpMs = now() - started;
      if (!kept) throw new Error('the dump kept no content of the open file');
      rmSync(join(dir, 'checkpoint'), { recursive: true, force: true });
      renameSync(images, join(dir, 'checkpoint'));
      if (round === 0) firstKeepMs = kept.ms;
      else samples.push({ frozenMs: frozenMs ?? NaN, keepMs: kept.ms, keptBytes: kept.bytes, dumpMs });
      progress(`kept files: dump ${round}: kept ${kept.bytes} bytes in ${kept.ms} ms, frozen ${frozenMs} ms`);
    }
    return { mib, firstKeepMs, samples };
  } finally {
    if (pid !== undefined) killAll([pid], 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export function keptFilesLines(result: KeptResult): string[] {
  if ('skipped' in result) return ['', `Content of a file changed in place, kept with each checkpoint: skipped (${result.skipped})`];
  const median = (key: keyof KeptSample): number => summarize(result.samples.map((sample) => sample[key]))?.median ?? NaN;
  return [
    '',
    `Content of a ${result.mib} MiB file held open, 1 % of it (random 4-KiB pages) changed between periodic checkpoints, medians of ${result.samples.length}:`,
    `  program frozen ${formatValue(median('frozenMs'), 'ms')}, of which keeping the file ${formatValue(median('keepMs'), 'ms')}; ` +
      `${result.samples.map((sample) => (sample.keptBytes / 2 ** 20).toFixed(1)).join(', ')} MiB kept by the successive checkpoints (all that differs from the base, renewed once half the file differs); ` +
      `dump ${formatValue(median('dumpMs'), 'ms')} (the first checkpoint copies the whole file: ${formatValue(result.firstKeepMs, 'ms')})`,
  ];
}
