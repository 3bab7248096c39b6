/**
 * The keep tool (protocol/kept-files.ts): ckpt-daemon's action script runs it at "post-dump",
 * the tree frozen, AS THE USER (setpriv): it reads the user's files through /proc/PID/fd of the
 * user's own processes (the kernel checks the user's rights, no name is followed) and writes
 * bases into the user's run folder. What goes into the images it writes on descriptors that
 * root opened there: the blocks on 1, the index on 3.
 * Input (stdin): one line per file, "/proc/PID/fd/N PATH". Environment: CKPT_RUN_DIR (the run
 * folder), CKPT_KEEP_MAX (the bound on the bytes written, for all the files).
 * Where the run folder's filesystem has reflinks, a file costs one FICLONE while frozen.
 * Elsewhere it costs one read of it and of its base (~0.2 s per GiB in the page cache here),
 * plus the changed blocks written; a new base is a full copy (~4 s per GiB with its checksum on
 * this VM's ext4).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, copyFileSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  bornOf, differingRuns, formatKeptIndex, KEPT_CHUNK, KEPT_FILES_FOLDER, KEPT_INDEX_IMAGE, parseKeptIndex, readAt,
  type KeptFile, type KeptIndex,
} from '../../protocol/kept-files.js';

/** The descriptors root opened in the images: the blocks, the index. */
export interface KeepOutput {
  data: number;
  index: number;
}
const TOOL_OUTPUT: KeepOutput = { data: 1, index: 3 };

/** The bases of the run's checkpoints (the latest, kept generations), by file path. */
function basesInUse(runDir: string): { latest: Map<string, KeptFile>; used: Set<string> } {
  const latest = new Map<string, KeptFile>();
  const used = new Set<string>();
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    names = [];
  }
  for (const name of names.filter((entry) => entry === 'checkpoint' || entry.startsWith('checkpoint.'))) {
    let index: KeptIndex | undefined;
    try {
      index = parseKeptIndex(readFileSync(join(runDir, name, KEPT_INDEX_IMAGE), 'utf8'));
    } catch {
      continue; // no index, or a partial dump's folder (root's)
    }
    for (const file of index?.files ?? []) {
      if (file.base === undefined) continue;
      used.add(file.base);
      if (name === 'checkpoint') latest.set(file.path, file);
    }
  }
  return { latest, used };
}

class Keeper {
  private readonly buffer = Buffer.allocUnsafe(KEPT_CHUNK);
  private readonly baseBuffer = Buffer.allocUnsafe(KEPT_CHUNK);
  dataOffset = 0;
  written = 0;
  private reflinks = true;

  constructor(
    private readonly basesDir: string,
    private readonly max: number,
    private readonly dataFd: number,
  ) {}

  /** The runs where the file differs from BASE (its first BASESIZE bytes). */
  private differences(fd: number, size: number, base: string, baseSize: number): [number, number][] | undefined {
    let baseFd: number;
    try {
      baseFd = openSync(join(this.basesDir, base), 'r');
    } catch {
      return undefined;
    }
    try {
      const runs: [number, number][] = [];
      for (let offset = 0; offset < size; offset += KEPT_CHUNK) {
        const chunk = readAt(fd, this.buffer, Math.min(KEPT_CHUNK, size - offset), offset);
        const old = offset < baseSize ? readAt(baseFd, this.baseBuffer, Math.min(KEPT_CHUNK, baseSize - offset), offset) : this.baseBuffer.subarray(0, 0);
        differingRuns(chunk, old, offset, runs);
      }
      return runs;
    } finally {
      closeSync(baseFd);
    }
  }

  /** Copies RUNS of the file to the data descriptor. */
  private writeRuns(fd: number, runs: [number, number][]): void {
    for (const [offset, length] of runs) {
      for (let done = 0; done < length; done += KEPT_CHUNK) {
        const chunk = readAt(fd, this.buffer, Math.min(KEPT_CHUNK, length - done), offset + done);
        writeSync(this.dataFd, chunk);
      }
    }
    const bytes = runs.reduce((sum, [, length]) => sum + length, 0);
    this.dataOffset += bytes;
    this.written += bytes;
  }

  /** Hashes the first SIZE bytes of FD, copying them to OUT when given. */
  private readWhole(fd: number, size: number, out?: number): string {
    const hash = createHash('sha256');
    for (let offset = 0; offset < size; offset += KEPT_CHUNK) {
      const chunk = readAt(fd, this.buffer, Math.min(KEPT_CHUNK, size - offset), offset);
      hash.update(chunk);
      if (out !== undefined) writeSync(out, chunk);
    }
    return hash.digest('hex');
  }

  /** A new base's name: for the file and the moment, never one a checkpoint uses. */
  private newBase(path: string): string {
    return `${createHash('sha256').update(path).digest('hex').slice(0, 16)}-${Date.now()}`;
  }

  /** A reflink of the file as a new base, where the filesystem has them (FICLONE): no byte copied. Undefined elsewhere. */
  private reflink(source: string, path: string): string | undefined {
    if (!this.reflinks) return undefined;
    const base = this.newBase(path);
    try {
      copyFileSync(source, join(this.basesDir, base), constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      return base;
    } catch {
      rmSync(join(this.basesDir, base), { force: true });
      this.reflinks = false; // one filesystem for the run folder: tried once per checkpoint
      return undefined;
    }
  }

  keep(source: string, path: string, previous: KeptFile | undefined): KeptFile {
    let fd: number;
    try {
      fd = openSync(source, 'r');
    } catch (error) {
      const stats = { inode: 0, size: 0, mode: 0 };
      return { path, ...stats, kind: 'unreadable', why: (error as NodeJS.ErrnoException).code ?? String(error) };
    }
    try {
      const stats = fstatSync(fd);
      const file = { path, inode: stats.ino, ...bornOf(stats), size: stats.size, mode: stats.mode & 0o7777 };
      const left = this.max - this.written;
      const reflink = this.reflink(source, path);
      if (reflink) return { ...file, kind: 'kept', base: reflink, baseSize: file.size, runs: [], dataOffset: this.dataOffset };
      if (previous?.base !== undefined && previous.baseSize !== undefined && previous.baseSha256 !== undefined) {
        const runs = this.differences(fd, file.size, previous.base, previous.baseSize);
        const bytes = runs?.reduce((sum, [, length]) => sum + length, 0);
        if (runs !== undefined && bytes !== undefined && bytes * 2 <= file.size && bytes <= left) {
          const dataOffset = this.dataOffset;
          this.writeRuns(fd, runs);
          return { ...file, kind: 'kept', base: previous.base, baseSize: previous.baseSize, baseSha256: previous.baseSha256, runs, dataOffset };
        }
      }
      if (file.size > left) return { ...file, kind: 'over', sha256: this.readWhole(fd, file.size) };
      const base = this.newBase(path);
      const out = openSync(join(this.basesDir, base), 'wx', 0o600);
      let sha256: string;
      try {
        sha256 = this.readWhole(fd, file.size, out);
      } finally {
        closeSync(out);
      }
      this.written += file.size;
      return { ...file, kind: 'kept', base, baseSize: file.size, baseSha256: sha256, sha256, runs: [], dataOffset: this.dataOffset };
    } finally {
      closeSync(fd);
    }
  }
}

/** Parses the tool's input lines: "/proc/PID/fd/N PATH". */
export function parseKeepList(text: string): { source: string; path: string }[] {
  const seen = new Set<string>();
  const list: { source: string; path: string }[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\/proc\/\d+\/fd\/\d+) (\/.*)$/.exec(line);
    if (!match || seen.has(match[2])) continue; // a file open in several processes is kept once
    seen.add(match[2]);
    list.push({ source: match[1], path: match[2] });
  }
  return list;
}

export function keepFiles(input: string, runDir: string, max: number, output: KeepOutput = TOOL_OUTPUT): KeptIndex {
  const started = Date.now();
  const basesDir = join(runDir, KEPT_FILES_FOLDER);
  mkdirSync(basesDir, { recursive: true, mode: 0o700 });
  const { latest, used } = basesInUse(runDir);
  const keeper = new Keeper(basesDir, max, output.data);
  const files = parseKeepList(input).map(({ source, path }) => keeper.keep(source, path, latest.get(path)));
  // Bases no checkpoint uses any more: of checkpoints removed, or of dumps that failed.
  for (const file of files) if (file.base !== undefined) used.add(file.base);
  for (const name of readdirSync(basesDir)) if (!used.has(name)) rmSync(join(basesDir, name), { force: true });
  const index = { ms: Date.now() - started, bytes: keeper.written, max, files };
  writeSync(output.index, formatKeptIndex(index));
  return index;
}

/** The tool's entry: engine/keep-files-tool.ts. */
export function keepFilesMain(): void {
  const runDir = process.env.CKPT_RUN_DIR;
  const max = Number(process.env.CKPT_KEEP_MAX);
  if (!runDir || !Number.isSafeInteger(max) || max < 0) {
    process.stderr.write('Error (ckpt-daemon keep tool): CKPT_RUN_DIR and CKPT_KEEP_MAX must be set\n');
    process.exitCode = 2;
    return;
  }
  try {
    keepFiles(readFileSync(0, 'utf8'), runDir, max);
  } catch (error) {
    process.stderr.write(`Error (ckpt-daemon keep tool): ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
