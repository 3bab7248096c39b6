/**
 * The content of the files a checkpoint's program held open for writing (not O_APPEND: their
 * size alone says what the checkpoint held), kept while the tree was frozen so that a resume
 * after a crash puts each one back exactly as it was, not only cut to its size: programs change
 * databases, HDF5 files and restart files in place.
 *
 * Kept cheaply: where the filesystem shares blocks between files (FICLONE: Btrfs, XFS, ...),
 * each checkpoint's copy is a reflink of the file, a new BASE in the run folder's
 * KEPT_FILES_FOLDER that costs no copy. Elsewhere (ext4, NFS) each file has a base, a full copy,
 * and each checkpoint keeps in its images only the blocks that differ from it (KEPT_DATA_IMAGE,
 * described by KEPT_INDEX_IMAGE); a checkpoint where more than half the file differs from its
 * base writes a new base instead. Where a file's blocks would take the checkpoint past its bound
 * (the daemon's --keep-files-max), only a checksum of its content is recorded ("over"): a resume
 * then tells whether the file is still as it was, and names it when not.
 * Written by the keep tool (engine/criu/keep-files.ts, run as the user by the action script), read
 * by the daemon for its figures and by ckpt-run at a resume (launcher/file-rollback.ts).
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import type { KeptFigures } from './run-dir.js';

/** In a CRIU images folder: the index (one JSON document) and the kept blocks, in the index's order. */
export const KEPT_INDEX_IMAGE = 'ckpt-kept.json';
export const KEPT_DATA_IMAGE = 'ckpt-kept.data';
/** In the run folder: the bases, the user's files. */
export const KEPT_FILES_FOLDER = 'kept-files';

/** Compared in chunks, kept in blocks: a page of SQLite or HDF5 changed costs one block. */
export const KEPT_BLOCK = 4096;
export const KEPT_CHUNK = 1 << 20;

export interface KeptFile {
  path: string;
  inode: number;
  /**
   * Its birth time (ms), where the filesystem keeps one: with the inode number it tells a file
   * replaced since, which ext4 may give the number just freed (a program that removes its scratch
   * file and creates it again got the same number at once, measured 2026-12-06).
   */
  born?: number;
  size: number;
  /** Permission bits, for a file that must be created again (it was replaced or removed). */
  mode: number;
  /** kept: base + runs rebuild it; over: past the bound, only sha256; unreadable: the user may not read it. */
  kind: 'kept' | 'over' | 'unreadable';
  /** The base's name in KEPT_FILES_FOLDER, its size and checksum (kept; no checksum for a reflink, which is not read). */
  base?: string;
  baseSize?: number;
  baseSha256?: string;
  /** [offset in the file, length]: taken from KEPT_DATA_IMAGE at dataOffset, one after the other. */
  runs?: [number, number][];
  dataOffset?: number;
  /** The content up to size, when the keep tool read all of it (over, or a new base). */
  sha256?: string;
  /** Why the file is unreadable. */
  why?: string;
}

export interface KeptIndex {
  /** How long the keep tool ran, the tree frozen. */
  ms: number;
  /** Bytes written for this checkpoint: blocks and new bases. */
  bytes: number;
  /** The bound it was given. */
  max: number;
  files: KeptFile[];
}

export function formatKeptIndex(index: KeptIndex): string {
  return `${JSON.stringify(index)}\n`;
}

/** The birth time a stat gives, as KeptFile.born: none where the filesystem keeps none (0). */
export const bornOf = (stats: { birthtimeMs: number }): { born?: number } => (stats.birthtimeMs > 0 ? { born: stats.birthtimeMs } : {});

/** Whether the file at a path now (STATS) is the one FILE recorded: same inode number and, where both are known, birth time. */
export const sameKeptFile = (file: KeptFile, stats: { ino: number; birthtimeMs: number }): boolean =>
  stats.ino === file.inode && (file.born === undefined || !(stats.birthtimeMs > 0) || stats.birthtimeMs === file.born);

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

function validFile(file: Partial<KeptFile>): boolean {
  if (typeof file.path !== 'string' || !file.path.startsWith('/') || !isCount(file.inode) || !isCount(file.size) || !isCount(file.mode)) return false;
  if (file.born !== undefined && !(typeof file.born === 'number' && file.born > 0)) return false;
  if (file.kind === 'over') return typeof file.sha256 === 'string';
  if (file.kind === 'unreadable') return true;
  if (file.kind !== 'kept') return false;
  const runs = file.runs;
  return (
    typeof file.base === 'string' && /^[\w.-]+$/.test(file.base) && isCount(file.baseSize) && ['string', 'undefined'].includes(typeof file.baseSha256) &&
    isCount(file.dataOffset) && Array.isArray(runs) && runs.every((run) => Array.isArray(run) && run.length === 2 && isCount(run[0]) && isCount(run[1]))
  );
}

/** The index as the keep tool writes it, or undefined for anything else (the user owns the images). */
export function parseKeptIndex(text: string | undefined): KeptIndex | undefined {
  if (text === undefined) return undefined;
  try {
    const index = JSON.parse(text) as Partial<KeptIndex>;
    if (!isCount(index.ms) || !isCount(index.bytes) || !isCount(index.max) || !Array.isArray(index.files)) return undefined;
    if (!index.files.every((file: Partial<KeptFile>) => typeof file === 'object' && file !== null && validFile(file))) return undefined;
    return index as KeptIndex;
  } catch {
    return undefined;
  }
}

/** The index's figures, for checkpoint_stats. */
export function keptFigures(index: KeptIndex): KeptFigures {
  const named = (kind: KeptFile['kind']): string[] => index.files.filter((file) => file.kind === kind).map((file) => file.path);
  return { files: named('kept').length, bytes: index.bytes, ms: index.ms, over: named('over'), max: index.max, unreadable: named('unreadable') };
}

/**
 * The runs of differing KEPT_BLOCKs between a chunk of the file at OFFSET and the same chunk
 * of the base (shorter or empty past the base's end), merged into RUNS.
 */
export function differingRuns(chunk: Buffer, base: Buffer, offset: number, runs: [number, number][]): void {
  if (chunk.length <= base.length && chunk.equals(base.subarray(0, chunk.length))) return;
  for (let start = 0; start < chunk.length; start += KEPT_BLOCK) {
    const end = Math.min(start + KEPT_BLOCK, chunk.length);
    if (end <= base.length && chunk.subarray(start, end).equals(base.subarray(start, end))) continue;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === offset + start) last[1] += end - start;
    else runs.push([offset + start, end - start]);
  }
}

/** Reads SIZE bytes of FD from POSITION (less at its end). */
export function readAt(fd: number, buffer: Buffer, size: number, position: number): Buffer {
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buffer, got, size - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return buffer.subarray(0, got);
}

/** The SHA-256 of the first SIZE bytes of PATH (fewer when it is shorter: the checksum then differs), or undefined when it cannot be read. */
export function sha256Of(path: string, size: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(KEPT_CHUNK);
    for (let offset = 0; offset < size; offset += KEPT_CHUNK) {
      const chunk = readAt(fd, buffer, Math.min(KEPT_CHUNK, size - offset), offset);
      hash.update(chunk);
      if (chunk.length < Math.min(KEPT_CHUNK, size - offset)) {
        hash.update('short');
        break;
      }
    }
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}
