/**
 * The roll-back of the output a killed job wrote after the last checkpoint: what is cut, where
 * it is kept, and when nothing is touched (another checkpoint, a restart daemon's images).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rollBackToCheckpoint } from '../../src/launcher/file-rollback.js';
import { checkpointIdentity } from '../../src/protocol/checkpoint-identity.js';
import { LOCAL_STATE_IMAGE } from '../../src/protocol/local-state.js';
import { parseOpenFiles } from '../../src/protocol/open-files.js';
import { OPEN_FILES_IMAGE, runDirPaths, type RunDirPaths } from '../../src/protocol/run-dir.js';
import { CliError, ExitCode } from '../../src/base/exit-codes.js';
import { loadRunState, newRunState, saveRunState, type RunState } from '../../src/state/run-state.js';

const AT_CHECKPOINT = { stdout: '1\n2\n3\n', stderr: 'warming up\n' };
const AFTER = { stdout: '4\n5\n', stderr: 'step 4\n' };

describe('rolling back the output written after the last checkpoint', () => {
  let paths: RunDirPaths;
  let state: RunState;

  /** A run as a job killed after its resume leaves it: checkpoint, its mark, and more output. */
  beforeEach(() => {
    paths = runDirPaths(mkdtempSync(join(tmpdir(), 'ckpt-rollback-')));
    mkdirSync(paths.images);
    writeFileSync(join(paths.images, 'inventory.img'), '');
    writeFileSync(paths.checkpointOk, '');
    writeFileSync(paths.stdoutLog, AT_CHECKPOINT.stdout + AFTER.stdout);
    writeFileSync(paths.stderrLog, AT_CHECKPOINT.stderr + AFTER.stderr);
    state = newRunState('default', ['prog'], '/work', new Date());
    state.checkpointOutput = {
      checkpoint: checkpointIdentity(paths.checkpointOk) as string,
      stdout: AT_CHECKPOINT.stdout.length,
      stderr: AT_CHECKPOINT.stderr.length,
    };
    // The killed job relayed part of what its program wrote before it was killed.
    state.relayed = { stdout: AT_CHECKPOINT.stdout.length + 2, stderr: AT_CHECKPOINT.stderr.length };
    state.history.push({ jobId: '4242', startedAt: new Date().toISOString(), mode: 'resume' });
    saveRunState(paths.state, state);
  });

  afterEach(() => rmSync(paths.dir, { recursive: true, force: true }));

  it('cuts both files back to the checkpoint, keeps the cut bytes, relays from the checkpoint on, and says so', () => {
    const [said] = rollBackToCheckpoint(paths, state);
    expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout);
    expect(readFileSync(paths.stderrLog, 'utf8')).toBe(AT_CHECKPOINT.stderr);
    expect(readFileSync(paths.stdoutRolledBack, 'utf8')).toBe(AFTER.stdout);
    expect(readFileSync(paths.stderrRolledBack, 'utf8')).toBe(AFTER.stderr);
    const relayedFrom = { stdout: AT_CHECKPOINT.stdout.length, stderr: AT_CHECKPOINT.stderr.length };
    expect(state.relayed).toEqual(relayedFrom);
    expect(loadRunState(paths.state)?.relayed).toEqual(relayedFrom);
    expect(said).toBe(
      `job 4242 ended without a new checkpoint (killed?): the program resumes from the last checkpoint ` +
        `and does again what it did after it; what it wrote then is rolled back: ${AFTER.stdout.length} bytes of ${paths.stdoutLog} ` +
        `(kept in ${paths.stdoutRolledBack}), ${AFTER.stderr.length} bytes of ${paths.stderrLog} (kept in ${paths.stderrRolledBack})`,
    );
  });

  it('a second roll-back appends to what the first kept', () => {
    rollBackToCheckpoint(paths, state);
    writeFileSync(paths.stdoutLog, `${AT_CHECKPOINT.stdout}4\n`);
    rollBackToCheckpoint(paths, state);
    expect(readFileSync(paths.stdoutRolledBack, 'utf8')).toBe(`${AFTER.stdout}4\n`);
    expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout);
  });

  const untouched = (): void => {
    expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout + AFTER.stdout);
    expect(readFileSync(paths.stderrLog, 'utf8')).toBe(AT_CHECKPOINT.stderr + AFTER.stderr);
    expect(state.relayed.stdout).toBe(AT_CHECKPOINT.stdout.length + 2);
  };

  it('leaves everything when the checkpoint is not the one the mark was taken at (a dump the job could not record)', () => {
    // As the daemon publishes it: a new file renamed over the old one (a new inode, surely).
    writeFileSync(`${paths.checkpointOk}.new`, '');
    renameSync(`${paths.checkpointOk}.new`, paths.checkpointOk);
    expect(rollBackToCheckpoint(paths, state)).toEqual([]);
    untouched();
  });

  it("leaves everything for a restart daemon's images: the program goes on from its own saved progress", () => {
    rmSync(join(paths.images, 'inventory.img'));
    expect(rollBackToCheckpoint(paths, state)).toEqual([]);
    untouched();
  });

  it('leaves everything for a state without a mark (a run of an earlier ckpt-run)', () => {
    delete state.checkpointOutput;
    expect(rollBackToCheckpoint(paths, state)).toEqual([]);
    untouched();
  });

  it('says nothing when no output came after the checkpoint', () => {
    writeFileSync(paths.stdoutLog, AT_CHECKPOINT.stdout);
    writeFileSync(paths.stderrLog, AT_CHECKPOINT.stderr);
    expect(rollBackToCheckpoint(paths, state)).toEqual([]);
  });

  describe('with the record of open files that ckpt-daemon made while the tree was frozen', () => {
    const RESULTS_AT_CHECKPOINT = 'step 1\nstep 2\n';
    let results: string;

    /** The record as the action script writes it: SIZE INODE BORN PATH (stat's %.9W), the output files among them. */
    function record(files: Array<[string, number]>): void {
      const born = (path: string): string => {
        const ns = statSync(path, { bigint: true }).birthtimeNs;
        return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
      };
      const lines = files.map(([path, size]) => `${size} ${statSync(path).ino} ${born(path)} ${path}\n`);
      writeFileSync(join(paths.images, OPEN_FILES_IMAGE), lines.join(''));
    }

    let workdir: string;

    beforeEach(() => {
      workdir = mkdtempSync(join(tmpdir(), 'ckpt-rollback-work-'));
      state.workdir = workdir;
      results = join(workdir, 'results.txt');
      writeFileSync(results, `${RESULTS_AT_CHECKPOINT}step 3\n`);
      record([
        [paths.stdoutLog, AT_CHECKPOINT.stdout.length],
        [paths.stderrLog, AT_CHECKPOINT.stderr.length],
        [results, RESULTS_AT_CHECKPOINT.length],
      ]);
      delete state.checkpointOutput; // a periodic checkpoint: the job that made it did not end with it
    });

    afterEach(() => rmSync(workdir, { recursive: true, force: true }));

    it("cuts the program's own files back too, keeps their cut bytes beside them, names each in the log", () => {
      const [said, ...more] = rollBackToCheckpoint(paths, state);
      expect(more).toEqual([]);
      expect(readFileSync(results, 'utf8')).toBe(RESULTS_AT_CHECKPOINT);
      expect(readFileSync(`${results}.rolled-back`, 'utf8')).toBe('step 3\n');
      expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout);
      expect(readFileSync(paths.stdoutRolledBack, 'utf8')).toBe(AFTER.stdout);
      expect(state.relayed).toEqual({ stdout: AT_CHECKPOINT.stdout.length, stderr: AT_CHECKPOINT.stderr.length });
      expect(said).toContain(`7 bytes of ${results} (kept in ${results}.rolled-back)`);
      expect(said).toContain(`${AFTER.stdout.length} bytes of ${paths.stdoutLog}`);
    });

    it('names the files changed after the checkpoint that the program did not hold open: nothing can roll them back', () => {
      mkdirSync(join(workdir, 'frames'));
      writeFileSync(join(workdir, 'frames', 'frame-0042.png'), 'png');
      // Times set, not raced: the checkpoint a minute ago, the input before it.
      const checkpointAt = new Date(Date.now() - 60_000);
      const before = new Date(checkpointAt.getTime() - 60_000);
      utimesSync(paths.checkpointOk, checkpointAt, checkpointAt);
      writeFileSync(join(workdir, 'input.dat'), 'unchanged');
      utimesSync(join(workdir, 'input.dat'), before, before);
      const [, warning] = rollBackToCheckpoint(paths, state);
      expect(warning).toMatch(new RegExp(`not rolled back: ${join(workdir, 'frames', 'frame-0042.png')}\\. The resumed program`));
      expect(warning).not.toContain('input.dat');
      expect(warning).not.toContain('results.txt');
    });

    it("leaves the job's own output files out of the warning: this job's and the earlier jobs' (by what they are), and the schedulers' default names", () => {
      const checkpointAt = new Date(Date.now() - 60_000);
      utimesSync(paths.checkpointOk, checkpointAt, checkpointAt);
      // Written after the checkpoint, all of them: only the program's own file is its change.
      const files = {
        oar: join(workdir, 'OAR.4242.stderr'),
        slurm: join(workdir, 'slurm-77_3.out'),
        earlierJob: join(workdir, 'job.log'),
        thisJob: join(workdir, 'run-output.txt'),
        redirectedDryRun: join(workdir, 'logs', 'sim.out'),
        program: join(workdir, 'frame-0042.png'),
      };
      mkdirSync(join(workdir, 'logs'));
      for (const path of Object.values(files)) writeFileSync(path, 'x');
      // An earlier job recorded its output under another name: it is known by its inode.
      const renamedEarlier = join(workdir, 'job.log.1');
      state.history[0].output = [{ path: renamedEarlier, inode: statSync(files.earlierJob).ino }];
      const ownNow = [files.thisJob, files.redirectedDryRun].map((path) => ({ path, inode: statSync(path).ino }));
      const [, warning] = rollBackToCheckpoint(paths, state, ownNow);
      expect(warning).toMatch(new RegExp(`not rolled back: ${files.program}\\. The resumed program`));
      for (const path of [files.oar, files.slurm, files.earlierJob, files.thisJob, files.redirectedDryRun]) expect(warning).not.toContain(path);
    });

    it('refuses the resume (exit 15, the file named) when a file is shorter, replaced or gone, and touches nothing', () => {
      const cases: Array<[string, () => void, RegExp]> = [
        ['shorter', () => writeFileSync(results, 'step'), /results\.txt is shorter than at the checkpoint \(4 bytes, was 14\)/],
        // The old file kept aside: its inode number cannot be reused by the new one.
        ['replaced', () => { renameSync(results, `${results}.old`); writeFileSync(results, `${RESULTS_AT_CHECKPOINT}x`); }, /results\.txt was replaced by another file/],
        // Nothing holds it: ext4 gives the new file the inode number just freed, its birth tells them apart.
        ['made again', () => { unlinkSync(results); writeFileSync(results, `${RESULTS_AT_CHECKPOINT}x`); }, /results\.txt was replaced by another file/],
        ['gone', () => rmSync(results), /results\.txt is gone \(it had 14 bytes at the checkpoint\)/],
      ];
      for (const [, change, message] of cases) {
        writeFileSync(results, `${RESULTS_AT_CHECKPOINT}step 3\n`);
        record([[results, RESULTS_AT_CHECKPOINT.length]]);
        change();
        let error: unknown;
        try {
          rollBackToCheckpoint(paths, state);
        } catch (caught) {
          error = caught;
        }
        expect(error).toBeInstanceOf(CliError);
        expect((error as CliError).exitCode).toBe(ExitCode.FileChanged);
        expect((error as CliError).message).toMatch(message);
        // Said as a sentence: which file, and that it changed (never "the program holds X is gone").
        expect((error as CliError).message).toMatch(/^cannot resume: a file the checkpoint's program holds open for writing changed after the checkpoint: .*results\.txt/);
        expect((error as CliError).message).toContain(`rm -r ${paths.dir}`);
        expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout + AFTER.stdout);
      }
    });

    it("reads earlier versions' records (no birth time) and a filesystem that keeps none (0)", () => {
      expect(parseOpenFiles('14 42 /work/results.txt\n14 43 0.000000000 /work/b c\n14 44 1796608965.000000123 /work/d\n')).toEqual([
        { size: 14, inode: 42, path: '/work/results.txt' },
        { size: 14, inode: 43, path: '/work/b c' },
        { size: 14, inode: 44, bornNs: 1_796_608_965_000_000_123n, path: '/work/d' },
      ]);
    });

    it('leaves a gone file that travelled with the checkpoint (node-local state) to the daemon, and still cuts the others', () => {
      const folder = join(paths.dir, 'ompi.node1.1000');
      const scratch = join(folder, 'pid.2', 'hwloc.sm');
      // Recorded while it was there (on the node that made the checkpoint); absent here.
      const stdoutLine = `${AT_CHECKPOINT.stdout.length} ${statSync(paths.stdoutLog).ino} ${paths.stdoutLog}\n`;
      writeFileSync(join(paths.images, OPEN_FILES_IMAGE), `16384 4242 ${scratch}\n${stdoutLine}`);
      writeFileSync(join(paths.images, LOCAL_STATE_IMAGE), `limit 1000\ncarried 16384 ${folder}\n`);
      expect(rollBackToCheckpoint(paths, state).join('\n')).toContain(`${AFTER.stdout.length} bytes of ${paths.stdoutLog}`);
      expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout);
      // Another folder's file gone: refused as before.
      writeFileSync(join(paths.images, LOCAL_STATE_IMAGE), `limit 1000\ncarried 16384 ${folder}-other\n`);
      expect(() => rollBackToCheckpoint(paths, state)).toThrow(/hwloc\.sm is gone/);
    });
  });
});
