/**
 * The real programs of the real-CRIU suites (Debian packages, test/e2e/real-programs/packages.txt,
 * installed by scripts/test-all.sh): how each is run, what of its output is compared with an
 * uninterrupted run, and where the checkpoint signals go. Shared by real-programs.e2e.test.ts
 * (root dry runs) and other-node.e2e.test.ts (a user's jobs resumed on "another node").
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ROOT } from './launcher-harness.js';
import { criuProbe, type Probe } from './real-parts.js';

export const FIXTURES = join(ROOT, 'test/e2e/real-programs');
const PACKAGES = readFileSync(join(FIXTURES, 'packages.txt'), 'utf8').split('\n').filter(Boolean);

/** CRIU, and every Debian package the cases run. */
export const realProgramsProbe: Probe = () => {
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

export type RealProgramId = 'lammps' | 'numpy' | 'r' | 'mpi' | 'java' | 'results-file';

export interface RealProgram {
  id: RealProgramId;
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

/** The programs; MPIRING gives examples/mpi-ring.c built (by the suite's beforeAll, after the cases are listed). */
export const realPrograms = (mpiRing: () => string): RealProgram[] => [
  {
    id: 'lammps',
    name: 'LAMMPS LJ melt (32000 atoms, 1400 steps)',
    argv: () => ['/usr/bin/lmp', '-in', join(ROOT, 'examples/lj-melt.in'), '-nocite', '-log', 'log.lammps'],
    resultFiles: ['log.lammps'],
    timing: /CPU = .* seconds|^Loop time of|^Performance:|CPU use with|^(Section|Pair|Neigh|Comm|Output|Modify|Other) +\||^-{20,}$|^Total wall time/,
    check: (output) => expect(output).toMatch(/^ +1400 +\S+ +\S+ +\S+ +\S+ +\S+ *$/m),
    marks: [/^ +500 /m, /^ +1000 /m],
  },
  {
    id: 'numpy',
    name: 'Python + NumPy, OpenBLAS with 2 threads (1500x1500, ~350 MB)',
    // OPENBLAS_NUM_THREADS only: other OPENBLAS_* settings of the machine are left as they are.
    argv: () => ['env', 'OPENBLAS_NUM_THREADS=2', '/usr/bin/python3', join(FIXTURES, 'matmul.py'), '1500', '60'],
    check: (output) => expect(Number(/^threads (\d+)$/m.exec(output)?.[1])).toBeGreaterThanOrEqual(2),
    marks: [/^step 20 /m, /^step 40 /m],
  },
  {
    id: 'r',
    name: 'R (Rscript), a seeded random walk of 4 million walkers in base R (~300 MB)',
    argv: () => ['/usr/bin/Rscript', join(FIXTURES, 'random_walk.R'), '4000000', '30'],
    check: (output) => expect(output).toMatch(/^walkers 4000000 steps 30 ever far \d+ most \d+$/m),
    marks: [/^step 10 /m, /^step 20 /m],
  },
  {
    id: 'mpi',
    name: 'Open MPI, mpirun -np 2 (ring + allreduce)',
    argv: (dir) => ['env', ...openMpiEnv(dir), '/usr/bin/mpirun', '-np', '2', '--oversubscribe', '--mca', 'btl', 'self,vader', mpiRing(), '60', '100'],
    check: (output) => expect(output).toMatch(/^step 60 ranks 2 total [0-9a-f]{16}$/m),
    marks: [/^step 20 /m, /^step 40 /m],
  },
  {
    id: 'java',
    name: 'Java, two worker threads',
    argv: () => ['/usr/bin/java', join(FIXTURES, 'TwoWorkers.java'), '40', '200000000'],
    check: (output) => expect(output).toMatch(/^threads done, final [0-9a-f]{16}$/m),
    marks: [/^round 13 /m, /^round 26 /m],
  },
  {
    id: 'results-file',
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

/** A run's output and the folder it ran in. */
export interface ProgramRun {
  stdout: string;
  dir: string;
}

/** The checkpointed run ended as the uninterrupted one: its output and result files, minus the program's timing lines. */
export function expectSameResults(program: RealProgram, got: ProgramRun, expected: ProgramRun): void {
  expect(withoutTiming(got.stdout, program.timing)).toEqual(withoutTiming(expected.stdout, program.timing));
  for (const file of program.resultFiles ?? []) {
    const want = readFileSync(join(expected.dir, file));
    const have = readFileSync(join(got.dir, file));
    if (program.timing) expect(withoutTiming(have.toString(), program.timing), file).toEqual(withoutTiming(want.toString(), program.timing));
    else expect(have.equals(want), `${file} differs`).toBe(true);
  }
}
