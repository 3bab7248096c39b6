/**
 * The program's node-local state: what it keeps in the node's own folders (/tmp, /var/tmp,
 * /dev/shm, its TMPDIR where that is a tmpfs), which the next job, on another node, would not
 * find. ckpt-daemon's action script archives it with the images while the tree is frozen, in two
 * tiers: the top-level entries holding what the tree holds (open, mapped, its working
 * directories), and then the top-level entries its user made or changed since the program started
 * (ckpt-run's DIR/program_started): a session folder made at start and held by nothing (R's
 * /tmp/RtmpXXXXXX), a scratch file written, closed and read again later. It records its bound and
 * what it carried and what stays (LOCAL_STATE_IMAGE, one line each: "limit BYTES", "carried BYTES
 * PATH" or "stays WHY PATH" for the held entries, "carried-created BYTES PATH" or "stays-created
 * WHY PATH" for the others; and "socket ADDRESS (STATE)" for the sockets bound to the node's own
 * address). The daemon puts the archive back, as the user, before the restore.
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
  /** Not held by the tree: made (or changed) by its user since the program started. */
  created?: true;
}

export interface StayingEntry {
  path: string;
  /**
   * "owner:UID", "over-limit:BYTES", "unreadable", "odd-name", "device"; for a created entry also
   * "socket", "fifo", "special", "line-break" (PATH is then its folder), "changed".
   */
  why: string;
  created?: true;
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
    const carried = /^carried(-created)? (\d+) (\/.*)$/.exec(line);
    if (carried) state.carried.push({ bytes: Number(carried[2]), path: carried[3], ...(carried[1] ? { created: true as const } : {}) });
    const stays = /^stays(-created)? (\S+) (\/.*)$/.exec(line);
    if (stays) state.stays.push({ why: stays[2], path: stays[3], ...(stays[1] ? { created: true as const } : {}) });
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

/** How `find ROOTS -mindepth 1 -maxdepth 1 -printf` lists a top-level entry: NUL after each (a name may hold a line break). */
export const TOP_ENTRY_FORMAT = '%y %U %C@ %p\\0';

/** A top-level entry of a node-local folder. */
export interface TopEntry {
  /** find's %y: f, d, l; s a socket, p a fifo, b and c devices. */
  type: string;
  uid: number;
  /** Its status change time: set when it is made, and at every change of the entry itself since. */
  ctimeMs: number;
  path: string;
}

/** find's listing (TOP_ENTRY_FORMAT); an item of another form is left out. */
export function parseTopEntries(text: string): TopEntry[] {
  const entries: TopEntry[] = [];
  for (const item of text.split('\0')) {
    const fields = /^(\S) (\d+) (\d+(?:\.\d+)?) (\/[^]*)$/.exec(item);
    if (fields) entries.push({ type: fields[1], uid: Number(fields[2]), ctimeMs: Number(fields[3]) * 1000, path: fields[4] });
  }
  return entries;
}

/**
 * The kernel stamps files from a coarse clock, a tick behind the one that timed the program's
 * start: an entry made at once may show a time just before it. What the job made in the second
 * before its program started comes too: the job's own.
 */
export const CREATED_SLACK_MS = 1000;

/**
 * From when (epoch ms) the entries made by the user UID travel with the checkpoint: the program's
 * start (STARTED, ckpt-run's DIR/program_started), less the slack. Undefined, none does: without a
 * start (an older ckpt-run), and for root, who owns the node's own entries (its services', the
 * other jobs' of root).
 */
export const createdSince = (started: number | undefined, uid: number): number | undefined =>
  started === undefined || uid === 0 ? undefined : started - CREATED_SLACK_MS;

/** A created entry of these kinds is no file to copy: it stays, said with this word. */
const SPECIAL_KINDS: Record<string, string> = { s: 'socket', p: 'fifo', b: 'device', c: 'device', f: '', d: '', l: '' };

/**
 * The created tier: the top-level entries of LISTING that the uid USER made or changed at or
 * after SINCE (their ctime), but those the tree holds (HELD, nodeLocalEntries': they travel, or
 * stay, with the held tier), criu's link-remap files (the held tier's when the tree holds them)
 * and the one holding RUNDIR. Never another user's. A socket, a fifo, a device, a name with a
 * space (the record's and the script's words are split on spaces) or a line break stays, with a
 * word. The same rule as scripts/criu-pre-resume-check.sh's on the frozen tree (there find
 * selects by uid and time, to the nanosecond as here).
 */
export function createdEntries(
  listing: TopEntry[],
  { user, since, held, runDir }: { user: number; since: number; held: string[]; runDir: string },
): { entries: string[]; stays: StayingEntry[] } {
  const entries: string[] = [];
  const stays: StayingEntry[] = [];
  for (const { type, uid, ctimeMs, path } of listing) {
    if (uid !== user || ctimeMs <= since) continue;
    const folder = path.slice(0, path.lastIndexOf('/'));
    const name = path.slice(folder.length + 1);
    if (name.includes('\n')) {
      stays.push({ path: folder, why: 'line-break', created: true });
      continue;
    }
    if (held.includes(path) || name.startsWith('link_remap.') || runDir === path || runDir.startsWith(`${path}/`)) continue;
    const special = SPECIAL_KINDS[type] ?? 'special';
    if (/\s/.test(name)) stays.push({ path, why: 'odd-name', created: true });
    else if (special) stays.push({ path, why: special, created: true });
    else entries.push(path);
  }
  return { entries, stays };
}

/**
 * What travels under the bound LIMIT: the held entries all or none (the restore needs every one
 * of them); then, where they travel or there are none, the created ones smallest first while
 * they fit: which of them the program will read again is not known, and a big leftover of
 * another job's must not push out a small session folder. The script decides alike.
 */
export function withinLimit(held: CarriedEntry[], created: CarriedEntry[], limit: number): CarriedEntry[] {
  let room = limit - held.reduce((sum, entry) => sum + entry.bytes, 0);
  if (room < 0) return [];
  const carried = [...held];
  for (const entry of [...created].sort((a, b) => a.bytes - b.bytes)) {
    if (entry.bytes > room) continue;
    carried.push(entry);
    room -= entry.bytes;
  }
  return carried;
}

/** Whether PATH is in what travelled: one of the carried entries or inside one. */
export const travelledWith = (state: LocalState, path: string): boolean =>
  state.carried.some((entry) => path === entry.path || path.startsWith(`${entry.path}/`));

export const carriedBytes = (state: LocalState): number => state.carried.reduce((sum, entry) => sum + entry.bytes, 0);

/** Sizes in MB as everywhere, in kB below 0.1 MB: most of these entries are a few kB (a semaphore is 4 kB). */
const sizeOf = (bytes: number): string => (bytes < 1e5 ? `${(bytes / 1e3).toFixed(1)} kB` : formatMegabytes(bytes));

/** "/tmp/ompi.n1.1000 (8.5 MB), /tmp/RtmpAb12 (4.1 kB, made since the program started): 8.5 MB", or undefined when nothing travelled. */
export function describeCarried(state: LocalState): string | undefined {
  if (state.carried.length === 0) return undefined;
  const entries = state.carried.map((entry) => `${entry.path} (${sizeOf(entry.bytes)}${entry.created ? ', made since the program started' : ''})`).join(', ');
  return `${entries}: ${sizeOf(carriedBytes(state))}`;
}

function why(entry: StayingEntry, limit: number): string {
  const [kind, detail] = entry.why.split(':');
  switch (kind) {
    case 'owner':
      return `it belongs to uid ${detail}, not to the program's user`;
    case 'over-limit':
      return entry.created
        ? `${formatMegabytes(Number(detail))}, over what the daemon's bound of ${formatMegabytes(limit)} leaves (ckpt-daemon --local-state-limit)`
        : `${formatMegabytes(Number(detail))}, with the rest over the daemon's bound of ${formatMegabytes(limit)} (ckpt-daemon --local-state-limit)`;
    case 'odd-name':
      return 'its name has a space';
    case 'line-break':
      return 'an entry whose name has a line break';
    case 'device':
      return "a device of this node's";
    case 'socket':
    case 'fifo':
      return `a ${kind}: it joins live processes, there is no content to copy`;
    case 'special':
      return 'neither a file, a folder nor a link';
    case 'changed':
      return 'another process (another job\'s?) changed it while it was copied';
    default:
      return 'the program\'s user cannot read all of it';
  }
}

/**
 * What the program holds on this node that did not travel with the checkpoint, said at the
 * checkpoint (not at a failed resume): one line, or undefined when everything travelled.
 */
export function describeStays(state: LocalState): string | undefined {
  const held = state.stays.filter((entry) => !entry.created);
  if (held.length === 0 && state.sockets.length === 0) return undefined;
  const sockets = state.sockets.map((socket) => `a socket bound to this node's own address, ${socket} (on another node a connection comes back closed, a listening socket fails the restore: bind to 0.0.0.0 or the loopback)`);
  const entries = [...held.map((entry) => `${entry.path} (${why(entry, state.limit)})`), ...sockets].join('; ');
  return (
    `the program holds what cannot travel with its checkpoint: ${entries}. The next job can resume it ` +
    `only on this node: keep such files in the job's folder on the shared filesystem, or ask for this node (OAR: -p "host='NODE'"; Slurm: --nodelist)`
  );
}

/**
 * What the program's user made on this node since the program started, not held by it, that did
 * not travel: one line, or undefined when all of it did. The program may never read it again:
 * said as what it would miss on another node, not as what keeps it here.
 */
export function describeLeft(state: LocalState): string | undefined {
  const left = state.stays.filter((entry) => entry.created);
  if (left.length === 0) return undefined;
  const entries = left.map((entry) => `${entry.path} (${why(entry, state.limit)})`).join('; ');
  return (
    `made in this node's own folders since the program started, and not carried with its checkpoint: ${entries}. ` +
    `If the program reads them again, the next job needs this node: keep such files in the job's folder on the shared filesystem`
  );
}
