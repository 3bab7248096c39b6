/** Which checkpoint images a job may still need (state/run-images.ts): the rule `ckpt-run clean` and the end of a run follow. */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDirPaths, type RunDirPaths } from '../../src/protocol/run-dir.js';
import { failedSoonAfterRestore, imagesVerdict, keepGenerations } from '../../src/state/run-images.js';
import { newRunState, type JobRecord, type RunState } from '../../src/state/run-state.js';

function run(status: RunState['status'], lastJob?: Partial<JobRecord>): RunState {
  const state = newRunState('r', ['prog'], '/w', new Date(0));
  state.status = status;
  if (status === 'finished') state.exitCode = 0;
  if (lastJob) state.history.push({ jobId: '1', startedAt: new Date(0).toISOString(), mode: 'fresh', ...lastJob });
  return state;
}

const ended = { endedAt: new Date(1).toISOString(), outcome: 'failed', exitCode: 4 } as const;

describe('imagesVerdict', () => {
  it('a finished run: removable, whatever else is there', () => {
    expect(imagesVerdict(run('finished', { ...ended, outcome: 'finished', exitCode: 0 }), false)).toEqual({ removable: true, why: 'finished, exit code 0' });
  });

  it('a run whose last job ended with checkpoint_ok present may still resume: kept, whatever its status says', () => {
    for (const status of ['running', 'checkpointed', 'failed'] as const) {
      expect(imagesVerdict(run(status, ended), true)).toMatchObject({ removable: false, why: expect.stringMatching(/^may still resume/) });
    }
  });

  it('a run whose last job recorded no end may be running (a dump renames its images in before checkpoint_ok): kept', () => {
    expect(imagesVerdict(run('running', {}), false)).toMatchObject({ removable: false, why: expect.stringMatching(/^a job may be running it/) });
    expect(imagesVerdict(run('running'), false)).toMatchObject({ removable: false });
  });

  it('a run that ended without checkpoint_ok starts from the beginning: removable', () => {
    expect(imagesVerdict(run('running', ended), false)).toMatchObject({ removable: true, why: expect.stringMatching(/^failed: no complete checkpoint/) });
  });

  it('an unusable state file: kept, ckpt-run does not guess', () => {
    expect(imagesVerdict(undefined, true)).toMatchObject({ removable: false, why: expect.stringMatching(/state file is unusable/) });
  });
});

describe('keepGenerations (--keep)', () => {
  /** A run folder just after a complete checkpoint: the current one, and the one before in checkpoint.old. */
  function afterCheckpoint(paths: RunDirPaths, n: number): void {
    mkdirSync(paths.images, { recursive: true });
    mkdirSync(paths.oldImages);
    writeFileSync(join(paths.oldImages, 'pages-1.img'), `checkpoint ${n}`);
  }

  it('--keep 1 (the default): the one before goes at once', () => {
    const paths = runDirPaths(mkdtempSync(join(tmpdir(), 'ckpt-keep-')));
    afterCheckpoint(paths, 1);
    expect(keepGenerations(paths, 1)).toEqual([]);
    expect(readdirSync(paths.dir)).toEqual(['checkpoint']);
    rmSync(paths.dir, { recursive: true });
  });

  it('--keep 3: the two before are kept as checkpoint.gen-TIME, oldest first out', () => {
    const paths = runDirPaths(mkdtempSync(join(tmpdir(), 'ckpt-keep-')));
    for (let n = 1; n <= 4; n++) {
      afterCheckpoint(paths, n);
      expect(keepGenerations(paths, 3, new Date(Date.UTC(2026, 11, 4, 12, n)))).toEqual([]);
    }
    const generations = readdirSync(paths.dir).filter((name) => name.startsWith('checkpoint.gen-')).sort();
    expect(generations).toEqual(['checkpoint.gen-2026-12-04T12-03-00-000Z', 'checkpoint.gen-2026-12-04T12-04-00-000Z']);
    expect(readFileSync(join(paths.dir, generations[0], 'pages-1.img'), 'utf8')).toBe('checkpoint 3');
    expect(existsSync(paths.oldImages)).toBe(false);
    rmSync(paths.dir, { recursive: true });
  });
});

describe('failedSoonAfterRestore: a finished run whose images are kept', () => {
  const finishedAfter = (mode: JobRecord['mode'], seconds: number, exitCode: number): RunState => {
    const state = newRunState('r', ['prog'], '/w', new Date());
    state.status = 'finished';
    state.exitCode = exitCode;
    state.history.push({ jobId: 'j', startedAt: '2026-12-06T10:00:00.000Z', endedAt: new Date(Date.parse('2026-12-06T10:00:00.000Z') + seconds * 1000).toISOString(), mode, outcome: 'finished', exitCode });
    return state;
  };

  it('exit code 1 or a signal within 10 s of the resuming job\'s start: kept', () => {
    expect(failedSoonAfterRestore(finishedAfter('resume', 2, 1))).toEqual({ exitCode: 1, afterMs: 2000 });
    expect(failedSoonAfterRestore(finishedAfter('resume', 9, 134))).toEqual({ exitCode: 134, afterMs: 9000 });
  });

  it('later, after a fresh start, or with a code of the program\'s own: not kept', () => {
    expect(failedSoonAfterRestore(finishedAfter('resume', 30, 1))).toBeUndefined();
    expect(failedSoonAfterRestore(finishedAfter('fresh', 2, 1))).toBeUndefined();
    expect(failedSoonAfterRestore(finishedAfter('resume', 2, 7))).toBeUndefined();
    expect(failedSoonAfterRestore(finishedAfter('resume', 2, 0))).toBeUndefined();
  });
});
