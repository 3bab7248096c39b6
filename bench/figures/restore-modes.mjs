/**
 * Full vs lazy restore of one image, side by side (root, criu with userfaultfd). A program holds
 * MIB mebibytes of random bytes (incompressible) and their SHA-256; it is dumped once with
 * ckpt-daemon's own CriuEngine, then restored ROUNDS times in each mode, alternating:
 *   running  restore asked → the restored program runs (criu restore -d returned)
 *   all in   restore asked → every page is in (full: the same; lazy: the lazy-pages server is done)
 * After each restore the program hashes all its memory again (SIGUSR1) and says whether it
 * matches: a restore that lost or damaged a page shows.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CriuEngine } from '../../dist/engine/criu.js';
import { probeCriu } from '../../dist/engine/criu-probe.js';
import { now } from '../clock.mjs';
import { waitUntil } from '../watch.mjs';

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

const ROOT_REQUESTER = { uid: 0, gid: 0, gids: [0], name: 'root' };

const lines = (file) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []);

export async function restoreModes({ mib = 2048, rounds = 3, criu = 'criu', progress = () => undefined } = {}) {
  if (process.geteuid?.() !== 0) return { skipped: 'needs root (criu)' };
  const findings = await probeCriu(criu);
  if (findings.problem) return { skipped: findings.problem };
  if (!findings.userfaultfd) return { skipped: 'no userfaultfd on this node: lazy restore cannot run' };
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-restore-'));
  const out = join(dir, 'out.log');
  writeFileSync(join(dir, 'program.cjs'), PROGRAM);
  writeFileSync(out, '');
  const engines = {
    full: new CriuEngine(criu, { settings: { ...findings.settings, lazyPages: false } }),
    lazy: new CriuEngine(criu, { settings: { ...findings.settings, lazyPages: true } }),
  };
  const samples = { full: [], lazy: [] };
  let pid;
  try {
    // O_APPEND output: criu restores it whatever its size has become.
    const holder = spawn(process.execPath, [join(dir, 'program.cjs'), String(mib)], { detached: true, stdio: ['ignore', openSync(out, 'a'), openSync(out, 'a')], cwd: dir });
    holder.unref();
    pid = holder.pid;
    progress(`restore modes: filling ${mib} MiB with random bytes`);
    await waitUntil(() => lines(out).includes('ready'), { timeoutMs: 120_000, what: `the ${mib} MiB program to be ready` });
    const images = join(dir, 'images');
    mkdirSync(images);
    const dumpStarted = now();
    await engines.full.dump({ pid, imagesDir: images, requester: ROOT_REQUESTER });
    const dumpMs = now() - dumpStarted;
    progress(`restore modes: dumped in ${Math.round(dumpMs)} ms; ${rounds} rounds of full and lazy restores`);
    for (let round = 1; round <= rounds; round += 1) {
      for (const mode of round % 2 === 1 ? ['full', 'lazy'] : ['lazy', 'full']) {
        await waitUntil(() => !existsSync(`/proc/${pid}`), { timeoutMs: 120_000, what: `PID ${pid} to be free for the next restore` });
        const scratchDir = mkdtempSync(join(dir, 'scratch-'));
        const asked = now();
        const tree = await engines[mode].restore({ imagesDir: images, scratchDir, requester: ROOT_REQUESTER });
        const runningMs = now() - asked;
        if (tree.pagesIn) await tree.pagesIn;
        const allInMs = now() - asked;
        const checksBefore = lines(out).filter((line) => line.startsWith('check')).length;
        process.kill(tree.pid, 'SIGUSR1');
        await waitUntil(() => lines(out).filter((line) => line.startsWith('check')).length > checksBefore, { timeoutMs: 60_000, what: 'the checksum after the restore' });
        const check = lines(out).filter((line) => line.startsWith('check'))[checksBefore];
        samples[mode].push({ runningMs, allInMs, checksumOk: check === 'check ok' });
        process.kill(tree.pid, 'SIGKILL');
        rmSync(scratchDir, { recursive: true, force: true });
        pid = tree.pid;
      }
    }
    return { mib, dumpMs, samples };
  } finally {
    try {
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The side-by-side table, with the targets of a lazy restore: running in 0.5 s, all in within a full restore's time. */
export function restoreModesLines(result) {
  if (result.skipped) return ['', `Restore of one image, full vs lazy: skipped (${result.skipped})`];
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  const row = (mode) => {
    const runs = result.samples[mode];
    const ok = runs.every((run) => run.checksumOk);
    return `${mode.padEnd(6)} ${s(median(runs.map((r) => r.runningMs))).padStart(9)} ${s(median(runs.map((r) => r.allInMs))).padStart(9)}   ${ok ? `all ${runs.length} checksums right` : 'A CHECKSUM WAS WRONG'}`;
  };
  const lazyRunning = median(result.samples.lazy.map((r) => r.runningMs));
  const lazyAllIn = median(result.samples.lazy.map((r) => r.allInMs));
  const fullAllIn = median(result.samples.full.map((r) => r.allInMs));
  return [
    '',
    `Restore of one ${result.mib} MiB image (random bytes, dumped in ${s(result.dumpMs)}), full vs lazy, medians of ${result.samples.full.length} each:`,
    'mode     running    all in   memory',
    row('full'),
    row('lazy'),
    `target: lazy running <= 0.5 s: ${lazyRunning <= 500 ? 'met' : 'MISSED'}; lazy all in <= full: ${lazyAllIn <= fullAllIn ? 'met' : 'MISSED'}`,
  ];
}
