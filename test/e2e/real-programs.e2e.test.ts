/**
 * Real programs from Debian's packages (test/e2e/real-programs/packages.txt, installed by
 * scripts/test-all.sh), each run once uninterrupted and once under `ckpt-run simulate --engine
 * criu` with real checkpoints: the output record and the program's own result files must end
 * identical, bit for bit, except the lines in which a program reports its own timing. The
 * checkpoint signals are sent by hand (`simulate --manual`) when the program's output reaches
 * two marks, about a third and two thirds of the way: two checkpoints and restores per case, at
 * points of the computation that do not depend on the machine's speed or load (a schedule in
 * seconds gave one checkpoint where the shared machine ran the program faster than it had run
 * alone). The figures (dump, restore, image size) are printed as the README's table rows.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../helpers/poll.js';
import { makeSandbox, readOr, ROOT, runSimulate, summaryOf } from '../helpers/launcher-harness.js';
import { criuProbe, realPartAvailable, type Probe } from '../helpers/real-parts.js';

const FIXTURES = join(ROOT, 'test/e2e/real-programs');
const PACKAGES = readFileSync(join(FIXTURES, 'packages.txt'), 'utf8').split('\n').filter(Boolean);

/** CRIU, and every Debian package the cases run. */
const realProgramsProbe: Probe = () => {
  const criu = criuProbe();
  if (criu !== undefined) return criu;
  const missing = PACKAGES.filter((name) => {
    try {
      return !execFileSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' }).includes('install ok installed');
    } catch {
      return true;
    }
  });
  return missing.length ? `Debian packages missing: ${missing.join(' ')} (sudo bash scripts/test-all.sh installs them)` : undefined;
};

interface RealProgram {
  name: string;
  /** The program's command line, run in DIR (its own folder). */
  argv: (dir: string) => string[];
  /** Files the program writes in DIR, compared like its output. */
  resultFiles?: string[];
  /** Lines in which the program reports its own timing: left out of the comparison. */
  timing?: RegExp;
  /** Checks on the uninterrupted run's output, beyond the comparison. */
  check?: (output: string) => void;
  /** A checkpoint signal goes when each mark appears in the output, or in MARK_FILE if set. */
  marks: [RegExp, RegExp];
  markFile?: string;
}

/**
 * Open MPI as root under `simulate`: every program there is PID 1 of its own namespace, so every
 * mpirun is PID 2 and Open MPI's files would collide with another run's: the run's own folder for
 * its session dir and shared-memory files (README, "Verified on real programs").
 */
const openMpiEnv = (dir: string): string[] => [
  'OMPI_ALLOW_RUN_AS_ROOT=1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1',
  `OMPI_MCA_orte_tmpdir_base=${join(dir, '.ompi')}`, `OMPI_MCA_btl_vader_backing_directory=${join(dir, '.ompi')}`,
];

let mpiRing = '';

const CASES: RealProgram[] = [
  {
    name: 'LAMMPS LJ melt (32000 atoms, 1400 steps)',
    argv: () => ['/usr/bin/lmp', '-in', join(ROOT, 'examples/lj-melt.in'), '-nocite', '-log', 'log.lammps'],
    resultFiles: ['log.lammps'],
    timing: /CPU = .* seconds|^Loop time of|^Performance:|CPU use with|^(Section|Pair|Neigh|Comm|Output|Modify|Other) +\||^-{20,}$|^Total wall time/,
    check: (output) => expect(output).toMatch(/^ +1400 +\S+ +\S+ +\S+ +\S+ +\S+ *$/m),
    marks: [/^ +500 /m, /^ +1000 /m],
  },
  {
    name: 'Python + NumPy, OpenBLAS with 2 threads (1500x1500, ~350 MB)',
    // OPENBLAS_NUM_THREADS only: other OPENBLAS_* settings of the machine are left as they are.
    argv: () => ['env', 'OPENBLAS_NUM_THREADS=2', '/usr/bin/python3', join(FIXTURES, 'matmul.py'), '1500', '60'],
    check: (output) => expect(Number(/^threads (\d+)$/m.exec(output)?.[1])).toBeGreaterThanOrEqual(2),
    marks: [/^step 20 /m, /^step 40 /m],
  },
  {
    name: 'Open MPI, mpirun -np 2 (ring + allreduce)',
    argv: (dir) => ['env', ...openMpiEnv(dir), '/usr/bin/mpirun', '-np', '2', '--oversubscribe', '--mca', 'btl', 'self,vader', mpiRing, '60', '100'],
    check: (output) => expect(output).toMatch(/^step 60 ranks 2 total [0-9a-f]{16}$/m),
    marks: [/^step 20 /m, /^step 40 /m],
  },
  {
    name: 'Java, two worker threads',
    argv: () => ['/usr/bin/java', join(FIXTURES, 'TwoWorkers.java'), '40', '200000000'],
    check: (output) => expect(output).toMatch(/^threads done, final [0-9a-f]{16}$/m),
    marks: [/^round 13 /m, /^round 26 /m],
  },
  {
    name: 'own results file, open throughout',
    argv: () => ['/usr/bin/python3', join(FIXTURES, 'results_writer.py'), 'results.txt', '300'],
    resultFiles: ['results.txt'],
    check: (output) => expect(output).toBe('wrote 300 steps to results.txt\n'),
    // It prints nothing else: its own file shows how far it is (flushed every 10 steps).
    marks: [/^100 /m, /^200 /m],
    markFile: 'results.txt',
  },
];

const withoutTiming = (text: string, timing?: RegExp): string[] => text.split('\n').filter((line) => !timing?.test(line));

/** The uninterrupted run: its stdout and how long it took; a non-zero exit fails the test. */
function runPlain(program: RealProgram, dir: string): { stdout: string; seconds: number } {
  const [command, ...args] = program.argv(dir);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: dir, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 2 ** 20 });
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

  for (const program of CASES) {
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

      expect(withoutTiming(readFileSync(join(run, 'stdout.log'), 'utf8'), program.timing)).toEqual(withoutTiming(plain.stdout, program.timing));
      for (const file of program.resultFiles ?? []) {
        const expected = readFileSync(join(plainDir, file));
        const got = readFileSync(join(workdir, file));
        if (program.timing) expect(withoutTiming(got.toString(), program.timing)).toEqual(withoutTiming(expected.toString(), program.timing));
        else expect(got.equals(expected), `${file} differs`).toBe(true);
      }

      const cycles: Array<{ dumpMs?: number; restoreMs?: number; imageBytes?: number }> = summary.cycles;
      const dumps = cycles.flatMap((cycle) => (cycle.dumpMs === undefined ? [] : [cycle.dumpMs]));
      const restores = cycles.flatMap((cycle) => (cycle.restoreMs === undefined ? [] : [cycle.restoreMs]));
      const images = cycles.flatMap((cycle) => (cycle.imageBytes === undefined ? [] : [cycle.imageBytes]));
      rows.push(
        `| ${program.name} | ${summary.checkpoints} | ${range(dumps, 's', 1000)} | ${range(restores, 's', 1000)} | ${range(images, 'MB', 2 ** 20)} | ` +
          `${plain.seconds.toFixed(1)} s | ${((Date.now() - started) / 1000).toFixed(1)} s |`,
      );
      console.log(rows[rows.length - 1]);
    }, 400_000);
  }
});
