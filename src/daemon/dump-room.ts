/**
 * Whether the run folder's filesystem has room for a dump, checked before the program is frozen.
 * A dump that fills the disk fails halfway, late (at the walltime, when it matters), after
 * freezing the program for nothing; refused at once, the job says why and the program runs on.
 * CRIU writes the tree's anonymous and shared memory (resident or swapped out) and a little
 * metadata; pages backed by files it does not copy. The room is the space the filesystem gives
 * the user (statfs f_bavail, asked as the user: NFS and some other filesystems report the
 * user's quota there; root's view would include the blocks reserved for root). The images also
 * hold the program's node-local state when the engine carries it (criu: an archive of what the
 * tree holds in /tmp, /var/tmp, /dev/shm, protocol/local-state.ts), counted as well.
 */
import { execa } from 'execa';
import { lstatSync, readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { formatMegabytes } from '../base/sizes.js';
import { asUserArgv } from '../proc/as-user.js';
import { heldNames, readOrEmpty, treeOf } from '../proc/processes.js';
import { createdEntries, NODE_LOCAL_FOLDERS, nodeLocalEntries, parseTopEntries, tmpfsTmpdir, TOP_ENTRY_FORMAT, withinLimit } from '../protocol/local-state.js';
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

/** Runs ARGV as REQUESTER (through setpriv: a command the user stops holds up this request only, not the daemon), for STATFS_TIMEOUT_MS at most. */
function asRequester(requester: Requester, argv: string[]) {
  const [file, ...args] = runsAsRoot() && requester.uid !== 0 ? asUserArgv(requester, argv) : argv;
  return execa(file, args, { reject: false, timeout: STATFS_TIMEOUT_MS, killSignal: 'SIGKILL' });
}

/** Why a command run as the requester gave no answer. */
const noAnswer = (result: Awaited<ReturnType<typeof asRequester>>): string =>
  result.timedOut ? `it did not answer within ${STATFS_TIMEOUT_MS / 1000} s` : `${result.stderr}`.trim() || `${result.stdout}`.trim();

/** The bytes the filesystem of RUN gives REQUESTER. */
async function freeBytesFor(run: PinnedDir, requester: Requester): Promise<number> {
  if (!runsAsRoot() || requester.uid === 0) {
    const stats = await statfs(run.path()); // in the thread pool: a hung filesystem does not stop the daemon
    return stats.bavail * stats.bsize;
  }
  const result = await asRequester(requester, ['stat', '--file-system', '--format', '%a %S', '--', run.location()]);
  const [blocks, blockSize] = `${result.stdout}`.trim().split(' ').map(Number);
  if (result.exitCode !== 0 || !Number.isFinite(blocks * blockSize)) {
    throw new Refusal(`cannot tell the free space of ${run.location()} as ${requester.name}: ${noAnswer(result)}`);
  }
  return blocks * blockSize;
}

/** The sizes of ENTRIES by du as REQUESTER (NUL after each line: a name may hold a line break); an entry du could not measure at all has none. */
async function sizesOf(requester: Requester, entries: string[]): Promise<{ sizes: Map<string, number>; said: string }> {
  const result = await asRequester(requester, ['du', '--summarize', '--block-size=1', '--null', '--', ...entries]);
  const sizes = new Map<string, number>();
  for (const line of `${result.stdout}`.split('\0')) {
    const tab = line.indexOf('\t');
    if (tab > 0) sizes.set(line.slice(tab + 1), Number(line.slice(0, tab)));
  }
  return { sizes, said: noAnswer(result) };
}

/**
 * The bytes of node-local state a dump of the tree at PID carries in its images, by what the
 * tree holds now: the requester's top-level entries of the node-local folders (and of its tmpfs
 * TMPDIR) holding its working directories, open and mapped files, 0 when over LIMIT (all or
 * nothing); and with SINCE, the entries the requester made or changed after it, smallest first
 * while they fit (protocol/local-state.ts: withinLimit). The action script decides on the frozen
 * tree, which may hold a little more (criu's link-remap files, a few kB each; what was made
 * meanwhile): the margin covers them. Listed by find and sized by du as the requester (root reads
 * no user's folder); an entry du cannot read stays on the node and counts as what it could.
 */
export async function nodeLocalBytes(pid: number, run: PinnedDir, requester: Requester, limit: number, since?: number): Promise<number> {
  const tree = treeOf(pid);
  const tmpdir = tmpfsTmpdir(/(?:^|\0)TMPDIR=([^\0]*)/.exec(readOrEmpty(`/proc/${pid}/environ`))?.[1], readOrEmpty(`/proc/${pid}/mounts`));
  const roots = tmpdir ? [...NODE_LOCAL_FOLDERS, tmpdir] : NODE_LOCAL_FOLDERS;
  const holding = nodeLocalEntries(tree.flatMap(heldNames), roots, run.location());
  const held = holding.filter((entry) => {
    try {
      return lstatSync(entry).uid === requester.uid; // another's stays on the node
    } catch {
      return false; // gone meanwhile
    }
  });
  let created: string[] = [];
  if (since !== undefined) {
    const listing = await asRequester(requester, ['find', ...roots, '-mindepth', '1', '-maxdepth', '1', '-uid', String(requester.uid), '-printf', TOP_ENTRY_FORMAT]);
    created = createdEntries(parseTopEntries(`${listing.stdout}`), { user: requester.uid, since, held: holding, runDir: run.location() }).entries;
  }
  if (held.length + created.length === 0) return 0;
  const { sizes, said } = await sizesOf(requester, [...held, ...created]);
  const unsized = held.filter((entry) => !sizes.has(entry));
  if (unsized.length > 0) throw new Refusal(`cannot tell the size of the program's node-local files (${unsized.join(', ')}) as ${requester.name}: ${said}`);
  const sized = (entries: string[]) => entries.filter((entry) => sizes.has(entry)).map((path) => ({ path, bytes: sizes.get(path) as number }));
  return withinLimit(sized(held), sized(created), limit).reduce((sum, entry) => sum + entry.bytes, 0);
}

/** The bytes a dump needs: the memory and the node-local state it writes, and a margin. */
export const dumpRoomNeeded = (memory: number, local: number): number => Math.ceil((memory + local) * (1 + DUMP_MARGIN.fraction)) + DUMP_MARGIN.bytes;

/** Why a dump does not fit in WHERE (FREE bytes free for USER), naming what it needs and the way out; undefined when it fits. */
export function dumpRoomRefusal(where: string, user: string, { memory, local, free }: { memory: number; local: number; free: number }): string | undefined {
  const needed = dumpRoomNeeded(memory, local);
  if (free >= needed) return undefined;
  const parts = local > 0 ? `the program's ${formatMegabytes(memory)} of memory, ${formatMegabytes(local)} of its node-local files carried with it, and a margin` : `the program's ${formatMegabytes(memory)} of memory and a margin`;
  return (
    `not enough room for the dump in ${where}: it needs about ${formatMegabytes(needed)} (${parts}) ` +
    `and the filesystem has ${formatMegabytes(free)} free for ${user}; free some space or quota (ckpt-run clean lists the images no job will resume)`
  );
}

/**
 * Refuses the dump of the tree at PID when RUN's filesystem lacks room for its images;
 * LOCALSTATELIMIT: the engine carries the program's node-local state, up to that many bytes (with
 * SINCE, the entries made after it too).
 */
export async function checkDumpRoom(run: PinnedDir, pid: number, requester: Requester, localStateLimit?: number, since?: number): Promise<void> {
  const memory = treeMemoryBytes(pid);
  const local = localStateLimit === undefined ? 0 : await nodeLocalBytes(pid, run, requester, localStateLimit, since);
  const refusal = dumpRoomRefusal(run.location(), requester.name, { memory, local, free: await freeBytesFor(run, requester) });
  if (refusal) throw new Refusal(refusal);
}
