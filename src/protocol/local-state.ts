/**
 * The program's node-local state: what it holds in the node's own folders (/tmp, /var/tmp,
 * /dev/shm, its TMPDIR where that is a tmpfs), which the next job, on another node, would not
 * find. ckpt-daemon's action script archives it with the images while the tree is frozen and
 * records its bound and what it carried and what stays (LOCAL_STATE_IMAGE, one line each:
 * "limit BYTES", "carried BYTES PATH" or "stays WHY PATH"; and "socket ADDRESS (STATE)" for the
 * sockets bound to the node's own address). The daemon puts the archive back, as the user,
 * before the restore.
 */
import { formatMegabytes } from '../base/sizes.js';

/** In the images: the record. */
export const LOCAL_STATE_IMAGE = 'ckpt-local-state';
/** In the images: the archive (tar, names relative to /), when anything was carried. */
export const LOCAL_STATE_ARCHIVE = `${LOCAL_STATE_IMAGE}.tar`;
/** The node's own folders whose entries the program holds travel (and its TMPDIR where that is a tmpfs). */
export const NODE_LOCAL_FOLDERS = ['/tmp', '/var/tmp', '/dev/shm'];

/** The default bound on what one checkpoint carries (ckpt-daemon --local-state-limit). */
export const DEFAULT_LOCAL_STATE_LIMIT = 1e9;

export interface CarriedEntry {
  path: string;
  bytes: number;
}

export interface StayingEntry {
  path: string;
  /** "owner:UID", "over-limit:BYTES", "unreadable", "odd-name". */
  why: string;
}

export interface LocalState {
  /** The bound the daemon applied (all or nothing). */
  limit: number;
  carried: CarriedEntry[];
  stays: StayingEntry[];
  /** Sockets bound to one of the node's own addresses: "TCP 10.0.0.5:5000 (listening)". */
  sockets: string[];
}

/** The record; a line that is neither form is left out (the script writes none). */
export function parseLocalState(text: string): LocalState {
  const state: LocalState = { limit: DEFAULT_LOCAL_STATE_LIMIT, carried: [], stays: [], sockets: [] };
  for (const line of text.split('\n')) {
    const limit = /^limit (\d+)$/.exec(line);
    if (limit) state.limit = Number(limit[1]);
    const carried = /^carried (\d+) (\/.*)$/.exec(line);
    if (carried) state.carried.push({ bytes: Number(carried[1]), path: carried[2] });
    const stays = /^stays (\S+) (\/.*)$/.exec(line);
    if (stays) state.stays.push({ why: stays[1], path: stays[2] });
    const socket = /^socket (.+)$/.exec(line);
    if (socket) state.sockets.push(socket[1]);
  }
  return state;
}

/**
 * TMPDIR as a node-local folder: where it is absolute, outside NODE_LOCAL_FOLDERS and on a tmpfs
 * by MOUNTS (/proc/PID/mounts: the longest mount point that holds it); else undefined.
 */
export function tmpfsTmpdir(tmpdir: string | undefined, mounts: string): string | undefined {
  if (!tmpdir?.startsWith('/') || /\s/.test(tmpdir)) return undefined;
  const folder = tmpdir.replace(/\/+$/, '');
  if (NODE_LOCAL_FOLDERS.some((root) => folder === root || folder.startsWith(`${root}/`))) return undefined;
  let best = { point: '', type: '' };
  for (const line of mounts.split('\n')) {
    const [, point, type] = line.split(' ');
    if (point === undefined || type === undefined) continue;
    const holds = point === '/' || folder === point || folder.startsWith(`${point}/`);
    if (holds && point.length >= best.point.length) best = { point, type };
  }
  return best.type === 'tmpfs' ? folder : undefined;
}

/**
 * The entries that carry the names HELD (a tree's working directories, open and mapped files):
 * for each name in one of ROOTS, the root's top-level entry that holds it, once; not a deleted
 * name, nor the entry that holds RUNDIR (the next job finds that where it is). The same rule as
 * scripts/criu-pre-resume-check.sh's on the frozen tree (which also drops the entries of other
 * owners and adds criu's link-remap files).
 */
export function nodeLocalEntries(held: string[], roots: string[], runDir: string): string[] {
  const entries = new Set<string>();
  for (const name of held) {
    if (name.endsWith(' (deleted)')) continue;
    for (const root of roots) {
      if (!name.startsWith(`${root}/`)) continue;
      const entry = `${root}/${name.slice(root.length + 1).split('/')[0]}`;
      if (runDir !== entry && !runDir.startsWith(`${entry}/`)) entries.add(entry);
    }
  }
  return [...entries];
}

/** Whether PATH is in what travelled: one of the carried entries or inside one. */
export const travelledWith = (state: LocalState, path: string): boolean =>
  state.carried.some((entry) => path === entry.path || path.startsWith(`${entry.path}/`));

export const carriedBytes = (state: LocalState): number => state.carried.reduce((sum, entry) => sum + entry.bytes, 0);

/** Sizes in MB as everywhere, in kB below 0.1 MB: most of these entries are a few kB (a semaphore is 4 kB). */
const sizeOf = (bytes: number): string => (bytes < 1e5 ? `${(bytes / 1e3).toFixed(1)} kB` : formatMegabytes(bytes));

/** "/tmp/ompi.n1.1000 (8.5 MB), /dev/shm/sem.mp-x (4.1 kB): 8.5 MB", or undefined when nothing travelled. */
export function describeCarried(state: LocalState): string | undefined {
  if (state.carried.length === 0) return undefined;
  const entries = state.carried.map((entry) => `${entry.path} (${sizeOf(entry.bytes)})`).join(', ');
  return `${entries}: ${sizeOf(carriedBytes(state))}`;
}

function why(entry: StayingEntry, limit: number): string {
  const [kind, detail] = entry.why.split(':');
  switch (kind) {
    case 'owner':
      return `it belongs to uid ${detail}, not to the program's user`;
    case 'over-limit':
      return `${formatMegabytes(Number(detail))}, with the rest over the daemon's bound of ${formatMegabytes(limit)} (ckpt-daemon --local-state-limit)`;
    case 'odd-name':
      return 'its name has a space';
    case 'device':
      return "a device of this node's";
    default:
      return 'the program\'s user cannot read all of it';
  }
}

/**
 * What the program holds on this node that did not travel with the checkpoint, said at the
 * checkpoint (not at a failed resume): one line, or undefined when everything travelled.
 */
export function describeStays(state: LocalState): string | undefined {
  if (state.stays.length === 0 && state.sockets.length === 0) return undefined;
  const sockets = state.sockets.map((socket) => `a socket bound to this node's own address, ${socket} (on another node a connection comes back closed, a listening socket fails the restore: bind to 0.0.0.0 or the loopback)`);
  const entries = [...state.stays.map((entry) => `${entry.path} (${why(entry, state.limit)})`), ...sockets].join('; ');
  return (
    `the program holds what cannot travel with its checkpoint: ${entries}. The next job can resume it ` +
    `only on this node: keep such files in the job's folder on the shared filesystem, or ask for this node (OAR: -p "host='NODE'"; Slurm: --nodelist)`
  );
}
