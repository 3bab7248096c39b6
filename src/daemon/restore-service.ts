/**
 * Serving a resume request. The images folder belongs to the user, and criu, running as root,
 * reads it and follows whatever it finds there (a `parent` symlink leads to another user's
 * images; a symlinked image reads any file into the restored memory). So for the time of the
 * restore the daemon takes the folder (owner root, mode 0700: the user can no longer add or
 * rename entries), checks that it holds only plain files of the user's, and gives it back
 * afterwards: the folder only. Its entries keep their owners, whatever the outcome: an entry that
 * is not the user's plain file is someone else's (moved in by the user: another user's file or
 * folder, a root file), and root must not hand it over.
 * The images must carry the daemon's own signature (image-signature.ts): they are copied into
 * the private scratch folder, checked there, and criu restores that copy, so images the daemon did
 * not make, or that changed since, never reach criu.
 * criu writes its log, pidfile and statistics into a private scratch folder; the pidfile is
 * published into DIR/checkpoint only once the restored tree passed the pre-resume check and
 * sits in the new job's cgroups (where the engine put it before it ran: a process it forked at
 * once would otherwise start, and stay, outside the job).
 */
import { fchmodSync, fchownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { RESTORED_CGROUPS_FILE, type CheckpointEngine } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { LocalState } from '../protocol/local-state.js';
import type { PagesIn } from '../protocol/run-dir.js';
import { treeOf } from '../proc/processes.js';
import type { Requester } from '../protocol/spool-request.js';
import { RUN_FILES } from './run-files.js';
import { stageSignedImages } from './image-signature.js';
import { NODE_SIDES } from '../scheduler/registry.js';
import { moveIntoCgroups, removeCgroups } from './cgroup-moves.js';
import { entriesOf, publishFile, runsAsRoot } from './owned-files.js';
import { PinnedDir } from './pinned-dir.js';
import { Refusal } from './refusal.js';

const PIDFILE = basename(RUN_FILES.pidfile);

function takeImages(run: PinnedDir, requester: Requester): PinnedDir {
  let images: PinnedDir;
  try {
    images = PinnedDir.open(run.path(RUN_FILES.images));
  } catch (error) {
    throw new Refusal(`no checkpoint folder to restore (${(error as NodeJS.ErrnoException).code})`);
  }
  // Root-owned: a daemon that died halfway through an earlier restore left it so.
  if (images.stats.uid !== requester.uid && images.stats.uid !== process.getuid?.()) {
    images.close();
    throw new Refusal(`the checkpoint folder belongs to uid ${images.stats.uid}, not to ${requester.name}`);
  }
  if (runsAsRoot()) fchownSync(images.fd, 0, 0);
  fchmodSync(images.fd, 0o700);
  return images;
}

function checkPlainFiles(images: PinnedDir, requester: Requester): void {
  for (const { name, stats } of entriesOf(images)) {
    if (!stats.isFile() || stats.nlink !== 1 || stats.uid !== requester.uid) {
      const kinds = "a symlink, a folder, a hard link or another user's file";
      throw new Refusal(`checkpoint/${name} is not a plain file of ${requester.name} (${kinds})`);
    }
  }
}

/** The new job's cgroups, where a scheduler made them on this node (OAR: scheduler/oar/cgroups.ts). */
const jobCgroups = (user: string, jobId: string): string[] => NODE_SIDES.flatMap(({ node }) => node.jobCgroups(user, jobId));

/**
 * Where the scheduler made cgroups for the new job: the restored tree goes there (again, for an
 * engine that did not), out of the dumped job's, which criu recreated: RESTORED says where criu
 * had put the tree ("4:cpuset:/oar/alice_12" lines), when the engine moved it already.
 */
function moveToJobCgroups(pid: number, jobId: string, user: string, cgroups: string[], restored?: string): string[] {
  if (cgroups.length === 0) return [];
  const procCgroup = restored ?? readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  const dumpedJobs = NODE_SIDES.flatMap(({ node }) => node.dumpedJobCgroups(procCgroup, user, jobId));
  return [...moveIntoCgroups(treeOf(pid), cgroups), ...removeCgroups(dumpedJobs)];
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A restored program: its root, and when every page of a lazy restore was in. */
export interface Resumed {
  pid: number;
  pagesIn?: PagesIn;
  /** The node-local state put back before the restore. */
  localState?: LocalState;
}

/**
 * Restores the run's checkpoint for the job JOBID: publishes the pidfile (and calls RUNNING) as
 * soon as the program runs, then, for a lazy restore, waits until every page is in, keeping the
 * images as they are until then; a next request of the same job waits in the daemon's queue.
 */
export async function serveResume(
  engine: CheckpointEngine,
  run: PinnedDir,
  jobId: string,
  requester: Requester,
  logger: Logger,
  imageKey: Buffer,
  deadline?: number,
  running: (pid: number) => void = () => undefined,
): Promise<Resumed> {
  const images = takeImages(run, requester);
  try {
    checkPlainFiles(images, requester);
    rmSync(images.path(PIDFILE), { force: true });
    const scratchDir = mkdtempSync(join(tmpdir(), 'ckpt-daemon-'));
    const cgroups = jobCgroups(requester.name, jobId);
    try {
      const staged = join(scratchDir, 'images');
      mkdirSync(staged, { mode: 0o700 });
      stageSignedImages(images, imageKey, requester.uid, staged); // throws before criu runs
      const restored = await engine.restore({ imagesDir: staged, scratchDir, requester, jobCgroups: cgroups, deadline });
      const where = readOrUndefined(join(scratchDir, RESTORED_CGROUPS_FILE));
      for (const problem of moveToJobCgroups(restored.pid, jobId, requester.name, cgroups, where)) logger.log('warn', `job ${jobId}: ${problem}`);
      publishFile(images, PIDFILE, `${restored.pid}\n`, requester);
      running(restored.pid);
      return { pid: restored.pid, pagesIn: await restored.pagesIn, localState: restored.localState };
    } finally {
      rmSync(scratchDir, { recursive: true, force: true });
    }
  } finally {
    if (runsAsRoot()) fchownSync(images.fd, requester.uid, requester.gid);
    fchmodSync(images.fd, images.stats.mode & 0o7777);
    images.close();
  }
}
