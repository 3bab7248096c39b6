/**
 * The roll-back of the output a killed job wrote after the last checkpoint: what is cut, where
 * it is kept, and when nothing is touched (another checkpoint, a restart daemon's images).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rollBackOutput } from '../../src/launcher/output-rollback.js';
import { checkpointIdentity } from '../../src/protocol/checkpoint-identity.js';
import { runDirPaths, type RunDirPaths } from '../../src/protocol/run-dir.js';
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
    const said = rollBackOutput(paths, state);
    expect(readFileSync(paths.stdoutLog, 'utf8')).toBe(AT_CHECKPOINT.stdout);
    expect(readFileSync(paths.stderrLog, 'utf8')).toBe(AT_CHECKPOINT.stderr);
    expect(readFileSync(paths.stdoutRolledBack, 'utf8')).toBe(AFTER.stdout);
    expect(readFileSync(paths.stderrRolledBack, 'utf8')).toBe(AFTER.stderr);
    const relayedFrom = { stdout: AT_CHECKPOINT.stdout.length, stderr: AT_CHECKPOINT.stderr.length };
    expect(state.relayed).toEqual(relayedFrom);
    expect(loadRunState(paths.state)?.relayed).toEqual(relayedFrom);
    expect(said).toBe(
      `job 4242 ended without a new checkpoint (killed at its walltime?): the program resumes from the last checkpoint ` +
        `and does again what it did after it; the output it wrote then, ${AFTER.stdout.length} bytes of stdout ` +
        `(kept in ${paths.stdoutRolledBack}) and ${AFTER.stderr.length} bytes of stderr (kept in ${paths.stderrRolledBack}), is rolled back`,
    );
  });

  it('a second roll-back appends to what the first kept', () => {
    rollBackOutput(paths, state);
    writeFileSync(paths.stdoutLog, `${AT_CHECKPOINT.stdout}4\n`);
    rollBackOutput(paths, state);
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
    expect(rollBackOutput(paths, state)).toBeUndefined();
    untouched();
  });

  it("leaves everything for a restart daemon's images: the program goes on from its own saved progress", () => {
    rmSync(join(paths.images, 'inventory.img'));
    expect(rollBackOutput(paths, state)).toBeUndefined();
    untouched();
  });

  it('leaves everything for a state without a mark (a run of an earlier ckpt-run)', () => {
    delete state.checkpointOutput;
    expect(rollBackOutput(paths, state)).toBeUndefined();
    untouched();
  });

  it('says nothing when no output came after the checkpoint', () => {
    writeFileSync(paths.stdoutLog, AT_CHECKPOINT.stdout);
    writeFileSync(paths.stderrLog, AT_CHECKPOINT.stderr);
    expect(rollBackOutput(paths, state)).toBeUndefined();
  });
});
