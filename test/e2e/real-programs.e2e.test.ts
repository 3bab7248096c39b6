/**
 * Real programs from Debian's packages (test/e2e/real-programs/packages.txt, installed by
 * scripts/test-all.sh), each run once uninterrupted and once under `ckpt-run simulate --engine
 * criu` with real checkpoints: the output record and the program's own result files must end
 * identical, bit for bit, except the lines in which a program reports its own timing. The
 * checkpoint signals are sent by hand (`simulate --manual`) when the program's output reaches
 * two marks, about a third and two thirds of the way: two checkpoints and restores per case, at
 * points of the computation that do not depend on the machine's speed or load (a schedule in
 * seconds gave one checkpoint where the shared machine ran the program faster than it had run
 * alone). The figures (dump, restore, image size) are printed as the README's table rows. The
 * programs and what is compared: test/helpers/real-programs.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../helpers/poll.js';
import { makeSandbox, readOr, ROOT, runSimulate, summaryOf } from '../helpers/launcher-harness.js';
import { realPartAvailable } from '../helpers/real-parts.js';
import { expectSameResults, realPrograms, realProgramsProbe, type RealProgram } from '../helpers/real-programs.js';

let mpiRing = '';

/**
 * How long the uninterrupted run may take before it is taken for hung: LAMMPS takes 23 s alone
 * here, 50 s beside 2 busy loops, and more than 120 s beside them and the other lane's forking job
 * (stress run of 988200b).
 */
const PLAIN_BOUND_MS = 300_000;

/** The uninterrupted run: its stdout and how long it took; a non-zero exit fails the test. */
function runPlain(program: RealProgram, dir: string): { stdout: string; seconds: number } {
  const [command, ...args] = program.argv(dir);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: dir, encoding: 'utf8', timeout: PLAIN_BOUND_MS, maxBuffer: 64 * 2 ** 20 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') throw new Error(`${program.name}: the uninterrupted run did not end within ${PLAIN_BOUND_MS / 1000} s`);
  if (result.status !== 0) throw new Error(`${program.name}: the uninterrupted run ended with ${result.status ?? result.signal ?? result.error}:\n${result.stderr}`);
  return { stdout: result.stdout, seconds: (Date.now() - started) / 1000 };
}

const rows: string[] = [];
/** Sandboxes to remove after each case: a NumPy checkpoint alone is ~350 MB. */
const sandboxes: string[] = [];

function sandbox(): string {
  const { dir, workdir } = makeSandbox('ckpt-real-');
  sandboxes.push(dir);
  mkdirSync(join(workdir, '.ompi'));
  return workdir;
}

function range(values: number[], unit: string, scale = 1): string {
  const scaled = values.map((value) => value / scale);
  const digits = unit === 'MB' ? 0 : 2;
  return `${Math.min(...scaled).toFixed(digits)}–${Math.max(...scaled).toFixed(digits)} ${unit}`;
}

describe.runIf(realPartAvailable('real programs on real CRIU', realProgramsProbe))('real programs, checkpointed and restored, end identical', () => {
  beforeAll(() => {
    mpiRing = join(sandbox(), 'mpi-ring');
    execFileSync('/usr/bin/mpicc', ['-O2', '-o', mpiRing, join(ROOT, 'examples/mpi-ring.c')], { stdio: 'pipe' });
  });

  afterEach(() => {
    // The first one holds the MPI program, built once for all cases.
    for (const dir of sandboxes.splice(1)) rmSync(dir, { recursive: true, force: true });
  });

  afterAll(() => {
    for (const dir of sandboxes) rmSync(dir, { recursive: true, force: true });
    console.log(['| program | checkpoints | dump | restore | image | run alone | checkpointed run |', '| --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n'));
  });

  for (const program of realPrograms(() => mpiRing)) {
    it(program.name, async () => {
      const plainDir = sandbox();
      const workdir = sandbox();
      const plain = runPlain(program, plainDir);
      program.check?.(plain.stdout);

      const started = Date.now();
      const sim = runSimulate(workdir, ['--engine', 'criu', '--manual', '--quiet', '--', ...program.argv(workdir)]);
      const run = join(workdir, '.ckpt-run/simulate');
      const markFile = join(program.markFile ? workdir : run, program.markFile ?? 'stdout.log');
      for (const mark of program.marks) {
        // A mark is printed by the program running again: the restored one after the first.
        await waitUntil(() => mark.test(readOr(markFile)) || sim.child.exitCode !== null, () => `${mark} in ${markFile}\n${sim.stderr.slice(-3000)}`, 120_000);
        sim.child.kill('SIGUSR2');
      }
      const code = await sim.exitCode(240_000);
      const summary = summaryOf(workdir);
      expect(code, `${summary.verdict}\n${sim.stderr.slice(-3000)}`).toBe(0);
      expect(summary.ok).toBe(true);
      expect(summary.checkpoints).toBe(2);

      expectSameResults(program, { stdout: readFileSync(join(run, 'stdout.log'), 'utf8'), dir: workdir }, { stdout: plain.stdout, dir: plainDir });

      const cycles: Array<{ dumpMs?: number; restoreMs?: number; imageBytes?: number }> = summary.cycles;
      const dumps = cycles.flatMap((cycle) => (cycle.dumpMs === undefined ? [] : [cycle.dumpMs]));
      const restores = cycles.flatMap((cycle) => (cycle.restoreMs === undefined ? [] : [cycle.restoreMs]));
      const images = cycles.flatMap((cycle) => (cycle.imageBytes === undefined ? [] : [cycle.imageBytes]));
      rows.push(
        `| ${program.name} | ${summary.checkpoints} | ${range(dumps, 's', 1000)} | ${range(restores, 's', 1000)} | ${range(images, 'MB', 2 ** 20)} | ` +
          `${plain.seconds.toFixed(1)} s | ${((Date.now() - started) / 1000).toFixed(1)} s |`,
      );
      console.log(rows[rows.length - 1]);
    }, 600_000);
  }
});
