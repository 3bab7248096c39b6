/**
 * A job killed without a new checkpoint (a crash, a kill, the walltime after a failed dump)
 * leaves files that the program wrote after its last checkpoint. Resumed from that checkpoint,
 * the program does that stretch again, so the files it held open for writing are cut back to
 * where the checkpoint's program left them: its output files in the run folder, and its own
 * (results, logs) wherever they are. The cut bytes are appended beside each file
 * (`*.rolled-back.log` for the output, `FILE.rolled-back` for the others), never thrown away.
 * Without this the resumed job would relay the lost stretch and then its redone twin, and a
 * results file opened O_APPEND would hold those steps twice: CRIU checks no size for it. Any
 * other file CRIU refuses to restore once it grew ("has bad size").
 * The sizes: ckpt-daemon records them while the tree is frozen (protocol/open-files.ts); for
 * images without that record, the output files' sizes noted when the job ended (checkpointOutput).
 * Files not opened O_APPEND may have changed in place, not only grown: where the checkpoint kept
 * their content (protocol/kept-files.ts) they are put back whole instead (kept-restore.ts), and
 * one that only has a checksum must still match it.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, statSync, truncateSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { CliError, ExitCode } from '../base/exit-codes.js';
import { OutputRelay } from '../proc/output-relay.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { LOCAL_STATE_IMAGE, parseLocalState, travelledWith } from '../protocol/local-state.js';
import { KEPT_INDEX_IMAGE, parseKeptIndex, type KeptIndex } from '../protocol/kept-files.js';
import { parseOpenFiles, sameOpenFile, type OpenFile } from '../protocol/open-files.js';
import { OPEN_FILES_IMAGE, RUNS_FOLDER, type RunDirPaths } from '../protocol/run-dir.js';
import type { OwnFile } from '../proc/job-output.js';
import { saveRunState, type RunState } from '../state/run-state.js';
import { keptProblems, restoreKeptFiles } from './kept-restore.js';

/** INDEX without the files LEFT says are put back some other way. */
function keptElsewhere(index: KeptIndex | undefined, left: (path: string) => boolean): KeptIndex | undefined {
  return index && { ...index, files: index.files.filter((file) => !left(file.path)) };
}

/** The file every CRIU image set starts with. */
const CRIU_INVENTORY = 'inventory.img';

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Appends bytes OFFSET.. of SOURCE to TARGET: the relay's copy, into a file. */
function appendTail(source: string, offset: number, target: string): void {
  const fd = openSync(target, 'a');
  try {
    new OutputRelay(source, fd, offset).pump();
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A file as it is now: its size, inode and birth time (ns, where kept), undefined when it is gone. */
export type FileNow = { size: number; inode: number; bornNs?: bigint } | undefined;

/** One file to cut back: bytes SIZE.. go to KEEP. */
export interface Cut {
  path: string;
  size: number;
  extra: number;
  keep: string;
}

/**
 * What to do with each file the checkpoint's program held open for writing: cut it back, or
 * refuse the resume (a file shorter than at the checkpoint, replaced, or gone: the program would
 * go on writing into it where it left off, over or past what is not there). KEEP: where the
 * cut bytes of a file go.
 */
export function planRollback(
  files: OpenFile[],
  now: (path: string) => FileNow,
  keep: (file: OpenFile) => string,
  travelled: (path: string) => boolean = () => false,
): { cuts: Cut[]; refusals: string[] } {
  const cuts: Cut[] = [];
  const refusals: string[] = [];
  for (const file of files) {
    const current = now(file.path);
    // Gone from a node-local folder (another node), and in the checkpoint: the daemon puts it back as it was.
    if (current === undefined && travelled(file.path)) continue;
    if (current === undefined) refusals.push(`${file.path} is gone (it had ${file.size} bytes at the checkpoint)`);
    else if (!sameOpenFile(file, current.inode, current.bornNs)) refusals.push(`${file.path} was replaced by another file (${replacedHow(file, current)})`);
    else if (current.size < file.size) refusals.push(`${file.path} is shorter than at the checkpoint (${current.size} bytes, was ${file.size})`);
    else if (current.size > file.size) cuts.push({ path: file.path, size: file.size, extra: current.size - file.size, keep: keep(file) });
  }
  return { cuts, refusals };
}

/** How the file now differs from the record's: its inode number, or only its birth (the number reused). */
function replacedHow(file: OpenFile, current: NonNullable<FileNow>): string {
  return current.inode !== file.inode ? `inode ${current.inode}, was ${file.inode}` : `the same inode number ${file.inode}, made after the checkpoint's file`;
}

function fileNow(path: string): FileNow {
  try {
    const stats = statSync(path, { bigint: true });
    return { size: Number(stats.size), inode: Number(stats.ino), ...(stats.birthtimeNs > 0n ? { bornNs: stats.birthtimeNs } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Cuts the files back, crash-safe in this order: the cut bytes are kept first, then the state
 * saved (with the relayed counts no higher than the output files' new ends), then the files
 * cut (a crash in between makes the next job do it again, at worst keeping the same bytes twice).
 */
function cutBack(paths: RunDirPaths, state: RunState, cuts: Cut[], outputEnds: RunState['relayed']): void {
  for (const cut of cuts) appendTail(cut.path, cut.size, cut.keep);
  state.relayed = { stdout: Math.min(state.relayed.stdout, outputEnds.stdout), stderr: Math.min(state.relayed.stderr, outputEnds.stderr) };
  saveRunState(paths.state, state);
  for (const cut of cuts) truncateSync(cut.path, cut.size);
}

function said(state: RunState, cuts: Cut[]): string {
  const previous = state.history[state.history.length - 1]?.jobId ?? 'the previous job';
  const what = cuts.map((cut) => `${cut.extra} bytes of ${cut.path} (kept in ${cut.keep})`).join(', ');
  return (
    `job ${previous} ended without a new checkpoint (killed?): the program resumes from the ` +
    `last checkpoint and does again what it did after it; what it wrote then is rolled back: ${what}`
  );
}

/** How far the look for files changed after the checkpoint goes: it must stay cheap on any working directory. */
const SCAN_DEPTH = 2;
const SCAN_ENTRIES = 5000;
const NAMED_AT_MOST = 5;

/**
 * The files under WORKDIR (a bounded look) changed after SINCE for which SKIP does not say
 * otherwise: the program wrote and closed them after the checkpoint, and nothing can roll them back.
 */
export function changedSince(workdir: string, since: number, skip: (path: string, inode: number) => boolean): string[] {
  const changed: string[] = [];
  let seen = 0;
  const visit = (dir: string, depth: number): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (++seen > SCAN_ENTRIES || entry.name === RUNS_FOLDER) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (depth < SCAN_DEPTH) visit(path, depth + 1);
      } else if (entry.isFile() && !path.endsWith('.rolled-back')) {
        try {
          const stats = statSync(path);
          if (stats.mtimeMs > since && !skip(path, stats.ino)) changed.push(path);
        } catch {
          // gone meanwhile
        }
      }
    }
  };
  visit(workdir, 0);
  return changed.sort();
}

/**
 * The schedulers' default names of a job's output files: for the jobs that recorded none (run
 * by an earlier ckpt-run). OAR: OAR.ID.stdout, OAR.ID.stderr; Slurm: slurm-ID.out, slurm-ID_TASK.out.
 */
const SCHEDULER_OUTPUT = /(^|\/)(OAR\.[^/]*\.std(out|err)|slurm-\d+(_\d+)?\.out)$/;

/**
 * Whether PATH (inode INODE) is not the program's business: a file it held open (rolled back
 * apart), or the output of a job of the run (this one's, JOBOUTPUT; the earlier ones' from their
 * records), which every job writes to.
 */
function notTheProgramsChange(state: RunState, files: OpenFile[], jobOutput: OwnFile[]): (path: string, inode: number) => boolean {
  const held = new Set(files.map((file) => file.path));
  const outputs = [...jobOutput, ...state.history.flatMap((job) => job.output ?? [])];
  const paths = new Set(outputs.map((file) => file.path));
  const inodes = new Set(outputs.map((file) => file.inode));
  return (path, inode) => held.has(path) || paths.has(path) || inodes.has(inode) || SCHEDULER_OUTPUT.test(path);
}

/** The warning for files that cannot be rolled back, if any. */
function notRolledBack(state: RunState, files: OpenFile[], since: number | undefined, jobOutput: OwnFile[]): string[] {
  if (since === undefined) return [];
  const changed = changedSince(state.workdir, since, notTheProgramsChange(state, files, jobOutput));
  if (changed.length === 0) return [];
  const named = changed.slice(0, NAMED_AT_MOST).join(', ') + (changed.length > NAMED_AT_MOST ? ` and ${changed.length - NAMED_AT_MOST} more` : '');
  return [
    `changed after the checkpoint, and not held open by the program then, so not rolled back: ${named}. ` +
      'The resumed program does not know of these changes (it may write such a file again, or expect it as it was)',
  ];
}

/**
 * Rolls the program's files back to the resumed checkpoint; returns what it did and what it
 * could not do, for the job's log (JOBOUTPUT: this job's own output files, never the program's
 * change). CliError (exit 15) when a file held open cannot be rolled back: the message names it
 * and what to do. A file that travelled with the checkpoint (its node-local state) and is gone
 * here is left to the daemon, which puts it back before the restore.
 */
export function rollBackToCheckpoint(paths: RunDirPaths, state: RunState, jobOutput: OwnFile[] = []): string[] {
  // Only a CRIU image brings the program back as it was at the dump; a program that a restart
  // daemon starts again goes on from its own saved progress, and nothing of its output is redone.
  if (!existsSync(join(paths.images, CRIU_INVENTORY))) return [];
  const files = imageRecord(paths, OPEN_FILES_IMAGE, parseOpenFiles);
  if (files === undefined) return rollBackOutput(paths, state);
  const local = imageRecord(paths, LOCAL_STATE_IMAGE, parseLocalState);
  const travelled = (path: string): boolean => local !== undefined && travelledWith(local, path);
  // The files whose content the checkpoint kept are put back whole; the others are cut back to
  // their size. One that travelled with the node-local state and is not on this node (another
  // node) is the daemon's to put back, from the archive made in the same freeze.
  const kept = keptElsewhere(imageRecord(paths, KEPT_INDEX_IMAGE, parseKeptIndex), (path) => travelled(path) && fileNow(path) === undefined);
  const restored = new Set(kept?.files.filter((file) => file.kind === 'kept').map((file) => file.path));
  const problems = kept ? keptProblems(kept, paths.dir) : [];
  if (problems.length > 0) {
    throw new CliError(
      `cannot resume: ${problems.join('; ')}. The checkpoint cannot bring the program back with its files as they were. ` +
        `Put the file back as it was at the checkpoint, or start the run afresh: rm -r ${paths.dir}`,
      ExitCode.FileChanged,
    );
  }
  // The output files, known by inode (the record names them as the program's /proc showed them), each stat'ed once.
  const stdoutInode = fileNow(paths.stdoutLog)?.inode;
  const stderrInode = fileNow(paths.stderrLog)?.inode;
  const keepOf = (file: OpenFile): string =>
    file.inode === stdoutInode ? paths.stdoutRolledBack : file.inode === stderrInode ? paths.stderrRolledBack : `${file.path}.rolled-back`;
  const { cuts, refusals } = planRollback(
    files.filter((file) => !restored.has(file.path)),
    fileNow,
    keepOf,
    travelled,
  );
  if (refusals.length > 0) {
    throw new CliError(
      `cannot resume: a file the checkpoint's program holds open for writing changed after the checkpoint: ${refusals.join('; ')}. It would go on writing where it left off. ` +
        `Put the file back as it was at the checkpoint (at least that long, the same file), or start the run afresh: rm -r ${paths.dir}`,
      ExitCode.FileChanged,
    );
  }
  const since = checkpointTime(paths);
  const put = kept && since !== undefined ? restoreKeptFiles(kept, paths.dir, paths.images, since, files.map((file) => file.path)) : [];
  const unrolled = notRolledBack(state, files, since, jobOutput);
  const back = put.map((what) => `rolled back to the checkpoint: ${what}`);
  if (cuts.length === 0) return [...back, ...unrolled];
  const endOf = (inode: number | undefined, relayed: number): number => files.find((file) => file.inode === inode)?.size ?? relayed;
  cutBack(paths, state, cuts, { stdout: endOf(stdoutInode, state.relayed.stdout), stderr: endOf(stderrInode, state.relayed.stderr) });
  return [said(state, cuts), ...back, ...unrolled];
}

/** A record the daemon left in the images (NAME, read with PARSE), or undefined for images without one. */
function imageRecord<T>(paths: RunDirPaths, name: string, parse: (text: string) => T): T | undefined {
  try {
    return parse(readFileSync(join(paths.images, name), 'utf8'));
  } catch {
    return undefined;
  }
}

/** When the resumed checkpoint was made (checkpoint_ok's mtime). */
function checkpointTime(paths: RunDirPaths): number | undefined {
  try {
    return statSync(paths.checkpointOk).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Images without the record of open files: the output files, to the sizes noted when the checkpoint's job ended. */
function rollBackOutput(paths: RunDirPaths, state: RunState): string[] {
  const mark = state.checkpointOutput;
  if (!mark || mark.checkpoint !== checkpointIdentity(paths.checkpointOk)) return [];
  const cuts = [
    { path: paths.stdoutLog, size: mark.stdout, keep: paths.stdoutRolledBack },
    { path: paths.stderrLog, size: mark.stderr, keep: paths.stderrRolledBack },
  ]
    .map((cut) => ({ ...cut, extra: sizeOf(cut.path) - cut.size }))
    .filter((cut) => cut.extra > 0);
  if (cuts.length === 0) return [];
  cutBack(paths, state, cuts, { stdout: mark.stdout, stderr: mark.stderr });
  return [said(state, cuts)];
}
