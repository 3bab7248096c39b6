/**
 * Whether the run folder's filesystem has room for a dump, checked before the program is frozen.
 * A dump that fills the disk fails halfway, late (at the walltime, when it matters), after
 * freezing the program for nothing; refused at once, the job says why and the program runs on.
 * CRIU writes the tree's anonymous and shared memory (resident or swapped out) and a little
 * metadata; pages backed by files it does not copy. The room is the space the filesystem gives
 * the user (statfs f_bavail, asked as the user: NFS and some other filesystems report the
 * user's quota there; root's view would include the blocks reserved for root).
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { formatMegabytes } from '../base/sizes.js';
import { asUserArgv } from '../proc/as-user.js';
import { treeOf } from '../proc/processes.js';
import type { Requester } from '../protocol/spool-request.js';
import { runsAsRoot } from './owned-files.js';
import type { PinnedDir } from './pinned-dir.js';
import { Refusal } from './refusal.js';

/** Room asked beyond the memory: CRIU's metadata images, the page maps, the signature. */
export const DUMP_MARGIN = { fraction: 0.1, bytes: 32 * 2 ** 20 };

/** How long the user's statfs may take (a hung network filesystem would hang the dump as well). */
export const STATFS_TIMEOUT_MS = 30_000;

const MEMORY_FIELDS = ['RssAnon', 'RssShmem', 'VmSwap'];

/** The memory a dump of the tree at PID writes, in bytes (shared memory counted once per process: an overestimate). */
export function treeMemoryBytes(pid: number): number {
  let kilobytes = 0;
  for (const member of treeOf(pid)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${member}/status`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    for (const line of status.split('\n')) {
      const [name, value] = line.split(':');
      if (MEMORY_FIELDS.includes(name)) kilobytes += Number.parseInt(value, 10) || 0;
    }
  }
  return kilobytes * 1024;
}

/** The bytes the filesystem of RUN gives REQUESTER. */
async function freeBytesFor(run: PinnedDir, requester: Requester): Promise<number> {
  if (!runsAsRoot() || requester.uid === 0) {
    const stats = await statfs(run.path()); // in the thread pool: a hung filesystem does not stop the daemon
    return stats.bavail * stats.bsize;
  }
  // Through setpriv (as-user.ts): a stat the user stops holds up this request only, not the daemon.
  const [file, ...args] = asUserArgv(requester, ['stat', '--file-system', '--format', '%a %S', '--', run.location()]);
  const result = await execa(file, args, {
    reject: false,
    timeout: STATFS_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  const [blocks, blockSize] = result.stdout.trim().split(' ').map(Number);
  if (result.exitCode !== 0 || !Number.isFinite(blocks * blockSize)) {
    const why = result.timedOut ? `it did not answer within ${STATFS_TIMEOUT_MS / 1000} s` : result.stderr.trim() || result.stdout.trim();
    throw new Refusal(`cannot tell the free space of ${run.location()} as ${requester.name}: ${why}`);
  }
  return blocks * blockSize;
}

/** Refuses the dump of the tree at PID when RUN's filesystem lacks room for its images. */
export async function checkDumpRoom(run: PinnedDir, pid: number, requester: Requester): Promise<void> {
  const memory = treeMemoryBytes(pid);
  const needed = Math.ceil(memory * (1 + DUMP_MARGIN.fraction)) + DUMP_MARGIN.bytes;
  const free = await freeBytesFor(run, requester);
  if (free >= needed) return;
  throw new Refusal(
    `not enough room for the dump in ${run.location()}: it needs about ${formatMegabytes(needed)} ` +
      `(the program's ${formatMegabytes(memory)} of memory and a margin) and the filesystem has ${formatMegabytes(free)} free for ${requester.name}; ` +
      'free some space or quota (ckpt-run clean lists the images no job will resume)',
  );
}
