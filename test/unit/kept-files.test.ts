/**
 * The content of files open for writing kept with a checkpoint (protocol/kept-files.ts): the
 * keep tool's bases and changed blocks, and a resume that puts each file back from them, on
 * real files in a temporary folder (the tool reads them through /proc/self/fd, as it reads a
 * frozen program's).
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import { keepFiles } from '../../src/engine/criu/keep-files.js';
import { rollBackToCheckpoint } from '../../src/launcher/file-rollback.js';
import { overlay } from '../../src/launcher/kept-restore.js';
import { differingRuns, KEPT_BLOCK, KEPT_DATA_IMAGE, KEPT_FILES_FOLDER, KEPT_INDEX_IMAGE, parseKeptIndex, sameKeptFile, type KeptFile, type KeptIndex } from '../../src/protocol/kept-files.js';
import { OPEN_FILES_IMAGE, runDirPaths, type RunDirPaths } from '../../src/protocol/run-dir.js';
import { newRunState, type RunState } from '../../src/state/run-state.js';

describe('changed blocks', () => {
  it('finds the 4-KiB blocks that differ, merges neighbours, and counts bytes past the base as changed', () => {
    const base = Buffer.alloc(5 * KEPT_BLOCK, 1);
    const chunk = Buffer.from(base);
    chunk[KEPT_BLOCK + 7] = 9; // block 1
    chunk[2 * KEPT_BLOCK] = 9; // block 2, next to it
    const runs: [number, number][] = [];
    differingRuns(chunk, base.subarray(0, 4 * KEPT_BLOCK + 100), 1 << 20, runs);
    expect(runs).toEqual([[(1 << 20) + KEPT_BLOCK, 2 * KEPT_BLOCK], [(1 << 20) + 4 * KEPT_BLOCK, KEPT_BLOCK]]);
    const same: [number, number][] = [];
    differingRuns(base, base, 0, same);
    expect(same).toEqual([]);
  });

  it('overlays the kept blocks on the base, within one chunk', () => {
    const file: KeptFile = { path: '/x', inode: 1, size: 10, mode: 0o644, kind: 'kept', base: 'b', baseSize: 8, baseSha256: 's', runs: [[2, 2], [8, 2]], dataOffset: 3 };
    const data = Buffer.from('...ABYZ');
    expect(overlay(file, 0, Buffer.from('abcdefgh'), (position, length) => data.subarray(position, position + length)).toString()).toBe('abABefghYZ');
  });

  it('reads only an index as the tool writes it: anything else (the user owns the images) is no index', () => {
    const good: KeptIndex = { ms: 1, bytes: 2, max: 3, files: [{ path: '/a', inode: 1, size: 2, mode: 0o600, kind: 'over', sha256: 'x' }] };
    expect(parseKeptIndex(JSON.stringify(good))).toEqual(good);
    expect(parseKeptIndex(JSON.stringify({ ...good, files: [{ ...good.files[0], path: 'relative' }] }))).toBeUndefined();
    expect(parseKeptIndex(JSON.stringify({ ...good, files: [{ ...good.files[0], kind: 'kept', base: '../../etc/passwd', baseSize: 1, baseSha256: 'x', runs: [], dataOffset: 0 }] }))).toBeUndefined();
    expect(parseKeptIndex('{')).toBeUndefined();
  });
});

describe('keeping the content at a checkpoint, putting it back at a resume', () => {
  let paths: RunDirPaths;
  let work: string;
  let state: RunState;
  let held: number[] = [];

  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'ckpt-kept-'));
    paths = runDirPaths(join(work, '.ckpt-run', 'run'));
    mkdirSync(paths.dir, { recursive: true });
    state = newRunState('run', ['prog'], work, new Date());
    state.history.push({ jobId: '1', startedAt: new Date().toISOString(), mode: 'fresh' });
  });

  afterEach(() => {
    for (const fd of held) closeSync(fd);
    held = [];
    rmSync(work, { recursive: true, force: true });
  });

  /** A checkpoint as the daemon makes it: the open-files record and the keep tool's output, in a fresh images folder. */
  function checkpoint(files: string[], max = 1 << 30): KeptIndex {
    const next = `${paths.images}.new`;
    mkdirSync(next);
    const list = files.map((path) => {
      const fd = openSync(path, 'r+');
      held.push(fd);
      return `/proc/${process.pid}/fd/${fd} ${path}`;
    });
    const data = openSync(join(next, KEPT_DATA_IMAGE), 'w');
    const index = openSync(join(next, KEPT_INDEX_IMAGE), 'w');
    let kept: KeptIndex;
    try {
      kept = keepFiles(list.join('\n'), paths.dir, max, { data, index });
    } finally {
      closeSync(data);
      closeSync(index);
    }
    writeFileSync(join(next, OPEN_FILES_IMAGE), files.map((path) => `${statSync(path).size} ${statSync(path).ino} ${path}\n`).join(''));
    writeFileSync(join(next, 'inventory.img'), '');
    rmSync(paths.images, { recursive: true, force: true });
    renameSync(next, paths.images);
    writeFileSync(paths.checkpointOk, '');
    utimesSync(paths.checkpointOk, new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
    return kept;
  }

  const db = (): string => join(work, 'data.db');
  const block = (fill: number, count = 1): Buffer => Buffer.alloc(count * KEPT_BLOCK, fill);

  it('a file changed in place comes back as at the checkpoint, same inode; its newer content is kept beside it', () => {
    writeFileSync(db(), Buffer.concat([block(1, 300)]));
    const first = checkpoint([db()]);
    expect(first.files[0]).toMatchObject({ kind: 'kept', runs: [], size: 300 * KEPT_BLOCK });
    expect(first.bytes).toBe(300 * KEPT_BLOCK); // the first checkpoint writes the base
    // Before the second checkpoint: one block changed. It keeps that block only.
    const fd = openSync(db(), 'r+');
    writeSync(fd, block(2), 0, KEPT_BLOCK, 7 * KEPT_BLOCK);
    const second = checkpoint([db()]);
    expect(second.bytes).toBe(KEPT_BLOCK);
    expect(second.files[0].runs).toEqual([[7 * KEPT_BLOCK, KEPT_BLOCK]]);
    const atCheckpoint = readFileSync(db());
    // After it: the crashed run changed blocks and grew the file.
    writeSync(fd, block(3, 2), 0, 2 * KEPT_BLOCK, 7 * KEPT_BLOCK);
    writeSync(fd, block(4), 0, KEPT_BLOCK, 300 * KEPT_BLOCK);
    closeSync(fd);
    const after = readFileSync(db());
    const inode = statSync(db()).ino;
    const said = rollBackToCheckpoint(paths, state);
    expect(readFileSync(db()).equals(atCheckpoint)).toBe(true);
    expect(statSync(db()).ino).toBe(inode);
    expect(readFileSync(`${db()}.rolled-back`).equals(after)).toBe(true);
    expect(said.join('\n')).toContain(`rolled back to the checkpoint: ${db()} is put back as at the checkpoint`);
    // Only the bases of live checkpoints stay.
    checkpoint([db()]);
    expect(existsSync(join(paths.dir, KEPT_FILES_FOLDER))).toBe(true);
  });

  it('a replaced file is put back, the newer one renamed aside; a journal made after the checkpoint is set aside', () => {
    writeFileSync(db(), block(5, 3));
    checkpoint([db()]);
    unlinkSync(db());
    writeFileSync(db(), 'another file');
    writeFileSync(`${db()}-journal`, 'pages of a later state');
    const said = rollBackToCheckpoint(paths, state);
    expect(readFileSync(db()).equals(block(5, 3))).toBe(true);
    expect(readFileSync(`${db()}.rolled-back`, 'utf8')).toBe('another file');
    expect(existsSync(`${db()}-journal`)).toBe(false);
    expect(readFileSync(`${db()}-journal.rolled-back`, 'utf8')).toBe('pages of a later state');
    expect(said.join('\n')).toMatch(/replaced after the checkpoint/);
  });

  it('a file removed and created again once nothing holds it is seen as replaced, even under the inode number it had (ext4 gives the freed number at once)', () => {
    writeFileSync(db(), block(6, 2));
    const [recorded] = checkpoint([db()]).files;
    for (const fd of held) closeSync(fd);
    held = [];
    unlinkSync(db());
    writeFileSync(db(), 'the same name again');
    const said = rollBackToCheckpoint(paths, state);
    expect(readFileSync(db()).equals(block(6, 2))).toBe(true);
    expect(readFileSync(`${db()}.rolled-back`, 'utf8')).toBe('the same name again');
    expect(said.join('\n'), `inode ${recorded.inode} recorded`).toMatch(/replaced after the checkpoint/);
  });

  it('a file is the recorded one when its inode number and, where both are known, its birth time are the same', () => {
    const file: KeptFile = { path: '/work/data.db', inode: 5, born: 1000.25, size: 0, mode: 0o644, kind: 'unreadable' };
    expect(sameKeptFile(file, { ino: 5, birthtimeMs: 1000.25 })).toBe(true);
    expect(sameKeptFile(file, { ino: 5, birthtimeMs: 2000.5 })).toBe(false); // the number given to a new file
    expect(sameKeptFile(file, { ino: 6, birthtimeMs: 1000.25 })).toBe(false);
    expect(sameKeptFile(file, { ino: 5, birthtimeMs: 0 })).toBe(true); // a filesystem with no birth time
    expect(sameKeptFile({ ...file, born: undefined }, { ino: 5, birthtimeMs: 2000.5 })).toBe(true); // an older record
  });

  it('a file over the bound keeps only its checksum: changed after the checkpoint, the resume is refused and names it', () => {
    writeFileSync(db(), block(6, 4));
    const kept = checkpoint([db()], KEPT_BLOCK);
    expect(kept.files[0]).toMatchObject({ kind: 'over' });
    expect(existsSync(join(paths.dir, KEPT_FILES_FOLDER, kept.files[0].base ?? 'none'))).toBe(false);
    // Unchanged: the resume goes on.
    expect(() => rollBackToCheckpoint(paths, state)).not.toThrow();
    const fd = openSync(db(), 'r+');
    writeSync(fd, Buffer.from('x'), 0, 1, 10);
    closeSync(fd);
    expect(() => rollBackToCheckpoint(paths, state)).toThrow(expect.objectContaining({ exitCode: ExitCode.FileChanged }));
    expect(() => rollBackToCheckpoint(paths, state)).toThrow(`${db()} changed after the checkpoint and its content was not kept`);
  });

  it('a base changed since is detected, and the resume refused before any file is touched', () => {
    writeFileSync(db(), block(7, 2));
    const kept = checkpoint([db()]);
    writeFileSync(join(paths.dir, KEPT_FILES_FOLDER, kept.files[0].base as string), 'tampered');
    writeFileSync(db(), 'newer');
    expect(() => rollBackToCheckpoint(paths, state)).toThrow(/kept copy .* was changed since/);
    expect(readFileSync(db(), 'utf8')).toBe('newer');
  });
});
