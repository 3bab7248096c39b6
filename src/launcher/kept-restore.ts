/**
 * At a resume after a crash: the files whose content the checkpoint kept (protocol/kept-files.ts)
 * are put back exactly as they were at it, from their base and the checkpoint's changed blocks,
 * and the files past the bound are checked against the checksum recorded while frozen.
 * ckpt-run does this as the user, before it asks for the restore.
 * A file changed in place is rewritten where it differs (same inode: its other names, owner and
 * locks' file stay); its newer content is copied first to FILE.rolled-back. A file replaced by
 * another, or removed, is created again with its mode; the one in its place is renamed to
 * FILE.rolled-back. Companions the program made beside it after the checkpoint ("FILE-journal",
 * "FILE.lock"...) are renamed aside too: SQLite would take a journal left by the killed run as
 * its own and write that later state back into the database.
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, ftruncateSync, openSync, readdirSync, renameSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KEPT_CHUNK, KEPT_DATA_IMAGE, KEPT_FILES_FOLDER, readAt, sameKeptFile, sha256Of, type KeptFile, type KeptIndex } from '../protocol/kept-files.js';

/** Where a restore of FILE keeps what it replaces. */
export const rolledBackName = (path: string): string => `${path}.rolled-back`;

/** What the checkpoint's content of FILE is between OFFSET and OFFSET+LENGTH: base, then blocks laid over it. */
export function overlay(file: KeptFile, offset: number, base: Buffer, readData: (position: number, length: number) => Buffer): Buffer {
  const chunk = Buffer.alloc(Math.min(KEPT_CHUNK, file.size - offset));
  base.copy(chunk, 0, 0, Math.min(base.length, chunk.length));
  let position = file.dataOffset ?? 0;
  for (const [start, length] of file.runs ?? []) {
    const from = Math.max(start, offset);
    const to = Math.min(start + length, offset + chunk.length);
    if (from < to) readData(position + (from - start), to - from).copy(chunk, from - offset);
    position += length;
  }
  return chunk;
}

/** Why FILE's kept content cannot be used, or undefined when its base is as recorded. */
export function baseProblem(file: KeptFile, runDir: string): string | undefined {
  const base = join(runDir, KEPT_FILES_FOLDER, file.base as string);
  if (file.baseSha256 === undefined) {
    // A reflink, never read while frozen: only its size can be checked.
    let size: number | undefined;
    try {
      size = statSync(base).size;
    } catch {
      return `its kept copy ${base} is gone`;
    }
    return size === file.baseSize ? undefined : `its kept copy ${base} was changed since (${size} bytes, was ${file.baseSize})`;
  }
  const sha = sha256Of(base, file.baseSize as number);
  if (sha === undefined) return `its kept copy ${base} is gone`;
  if (sha !== file.baseSha256) return `its kept copy ${base} was changed since`;
  return undefined;
}

/** Puts FILE back as at the checkpoint; returns what it did, or undefined when it was already so. */
function restoreFile(file: KeptFile, runDir: string, imagesDir: string): string | undefined {
  const base = openSync(join(runDir, KEPT_FILES_FOLDER, file.base as string), 'r');
  const data = openSync(join(imagesDir, KEPT_DATA_IMAGE), 'r');
  const baseBuffer = Buffer.allocUnsafe(KEPT_CHUNK);
  const currentBuffer = Buffer.allocUnsafe(KEPT_CHUNK);
  const readData = (position: number, length: number): Buffer => readAt(data, Buffer.allocUnsafe(length), length, position);
  let now: { ino: number; size: number; birthtimeMs: number } | undefined;
  try {
    now = statSync(file.path);
  } catch {
    now = undefined;
  }
  const keep = rolledBackName(file.path);
  const sameFile = now !== undefined && sameKeptFile(file, now);
  let target: number;
  let what: string;
  if (sameFile) {
    target = openSync(file.path, 'r+');
  } else {
    if (now !== undefined) renameSync(file.path, keep);
    target = openSync(file.path, 'wx', file.mode);
    what = now === undefined ? `${file.path} (removed after the checkpoint) is created again` : `${file.path} (replaced after the checkpoint) is put back, the other file renamed ${keep}`;
  }
  let changed = 0;
  try {
    const wasSize = sameFile ? (now as { size: number }).size : 0;
    for (let offset = 0; offset < file.size; offset += KEPT_CHUNK) {
      const wanted = overlay(file, offset, readAt(base, baseBuffer, Math.min(KEPT_CHUNK, Math.max(0, (file.baseSize as number) - offset)), offset), readData);
      const current = sameFile ? readAt(target, currentBuffer, wanted.length, offset) : Buffer.alloc(0);
      if (current.equals(wanted)) continue;
      if (sameFile && changed === 0) copyFileSync(file.path, keep); // the newer content, before the first write
      changed += wanted.length;
      writeSync(target, wanted, 0, wanted.length, offset);
    }
    if (sameFile && changed === 0 && wasSize === file.size) return undefined;
    if (sameFile && changed === 0) copyFileSync(file.path, keep);
    ftruncateSync(target, file.size);
    fsyncSync(target);
  } finally {
    closeSync(target);
    closeSync(base);
    closeSync(data);
  }
  what ??= `${file.path} is put back as at the checkpoint (${changed} bytes rewritten, ${file.size} bytes long; its newer content kept in ${keep})`;
  return what;
}

/** Companions of PATH ("PATH-journal", "PATH.lock"...) changed after SINCE and not among KNOWN, renamed aside. */
function setAsideCompanions(path: string, since: number, known: Set<string>): string[] {
  const dir = dirname(path);
  const name = basename(path);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const moved: string[] = [];
  for (const entry of entries) {
    const companion = join(dir, entry);
    if (!(entry.startsWith(`${name}-`) || entry.startsWith(`${name}.`)) || entry.endsWith('.rolled-back') || known.has(companion)) continue;
    try {
      if (!statSync(companion).isFile() || statSync(companion).mtimeMs <= since) continue;
      renameSync(companion, rolledBackName(companion));
      moved.push(`${companion} (made after the checkpoint, renamed ${rolledBackName(companion)})`);
    } catch {
      // gone meanwhile
    }
  }
  return moved;
}

/**
 * Why the resume must not go on, per file (a base gone or changed; a file past the bound whose
 * content up to its recorded size is no longer the checkpoint's): checked before anything is
 * touched. SIZEOK: the file's size now allows the check (the cut-back comes after).
 */
export function keptProblems(index: KeptIndex, runDir: string): string[] {
  const problems: string[] = [];
  for (const file of index.files) {
    if (file.kind === 'kept') {
      const problem = baseProblem(file, runDir);
      if (problem) problems.push(`${file.path}: ${problem}`);
    } else if (file.kind === 'over' && sha256Of(file.path, file.size) !== file.sha256) {
      problems.push(
        `${file.path} changed after the checkpoint and its content was not kept (over the daemon's --keep-files-max of ${index.max} bytes): ` +
          'the resumed program would find it unlike what it left',
      );
    }
  }
  return problems;
}

/** Restores the kept files; returns what it did, for the job's log. OPEN: every file the program held open for writing. */
export function restoreKeptFiles(index: KeptIndex, runDir: string, imagesDir: string, since: number, open: string[]): string[] {
  const known = new Set([...open, ...index.files.map((file) => file.path)]);
  const said: string[] = [];
  for (const file of index.files) {
    if (file.kind === 'unreadable') said.push(`not ${file.path}: you may not read it (${file.why ?? 'refused'}), so its content was not kept; only its size is rolled back`);
    if (file.kind !== 'kept') continue;
    const what = restoreFile(file, runDir, imagesDir);
    if (what) said.push(what);
    if (existsSync(file.path)) said.push(...setAsideCompanions(file.path, since, known));
  }
  return said;
}
