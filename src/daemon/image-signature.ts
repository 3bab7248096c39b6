/**
 * Signed images: the daemon restores only images it made itself.
 *
 * criu, running as root, acts on what the images say BEFORE the pre-resume check can look at
 * the restored tree: it opens every file named in files.img with the image's own flags
 * (O_TRUNC, O_CREAT), creates ghost and link-remap files, binds unix sockets, creates cgroups.
 * Images crafted by a user could thus make root truncate or create any file on the node. So
 * after every dump the daemon signs the images (an HMAC-SHA256 with a key only root can read)
 * and before every restore it checks that signature; images it did not make, or that changed
 * since, are refused and criu never runs.
 *
 * What is signed: the name of every file of the folder, and the content of every file except
 * the memory pages (pages-N.img). The pages are the program's own memory: criu copies them into
 * the restored processes' address space and acts on nothing in them, so they can do no harm
 * that the program could not do itself, and they are most of the images' size (hashing them
 * would double the cost of every restore). Everything that tells criu what to open, create,
 * bind or join (files, fdinfo, core, mm, pagemap, ghost files, cgroups...) is signed.
 *
 * The images stay the user's files while root restores them, and a user may hold a descriptor
 * to one of them opened earlier: checking the files in place and letting criu read them later
 * would let the content change in between. So the signed files are COPIED into a private
 * folder of the daemon's, the signature is checked over the copy, and criu restores from the
 * copy; the pages are reached through symlinks to the originals in the pinned folder.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual, type Hmac } from 'node:crypto';
import {
  closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, symlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { PinnedDir } from './pinned-dir.js';
import { Refusal } from './refusal.js';
import { RUN_FILES } from './run-files.js';

/** The signature, in the images folder; written like the daemon's other files there. */
export const SIGNATURE_FILE = 'ckpt-daemon.sig';
/** The default key file: the same on every node of a cluster (checkpoints move between nodes). */
export const DEFAULT_IMAGE_KEY = '/etc/ckpt-daemon/image.key';
export const IMAGE_KEY_BYTES = 32;

const SIGNATURE_HEADER = 'ckpt-daemon image signature v1 hmac-sha256';
/** Files the daemon itself writes into the images folder after the dump: not part of the images. */
const UNSIGNED = new Set([SIGNATURE_FILE, basename(RUN_FILES.pidfile)]);
const CHUNK = 1 << 20;

/** Memory pages: their name is signed, not their content (see above). */
export const isMemoryPages = (name: string): boolean => /^pages-\d+\.img$/.test(name);

export const IMAGES_REFUSED = "images not made by this cluster's ckpt-daemon, or changed since";

/** Reads all of FD, passing each chunk to EACH. */
function readAll(fd: number, each: (chunk: Buffer) => void): void {
  const buffer = Buffer.allocUnsafe(CHUNK);
  for (;;) {
    const n = readSync(fd, buffer, 0, CHUNK, null);
    if (n === 0) return;
    each(buffer.subarray(0, n));
  }
}

/** Opens the plain file PATH for reading, never through a symlink, never blocking on a FIFO. */
function openPlain(path: string, what: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw new Refusal(`${IMAGES_REFUSED}: cannot open ${what} (${(error as NodeJS.ErrnoException).code})`);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Refusal(`${IMAGES_REFUSED}: ${what} is not a plain file`);
  }
  return fd;
}

/**
 * The MAC over the images in DIR made for the user OWNER (a uid: images are signed for the
 * requester of the dump, so that one user's images handed to another are refused before criu
 * acts on them as root): then, for each signed name (in byte order), "NAME\0DIGEST\0", where
 * DIGEST is the SHA-256 of the content (or "-" for memory pages). Names hold no NUL, so the
 * encoding is unambiguous. COPYTO, if given, receives a copy of every signed file, and a symlink
 * to the original for each pages file: the MAC is then over exactly what was copied.
 */
function imagesMac(dir: PinnedDir, key: Buffer, owner: number, copyTo?: string): Buffer {
  const names = readdirSync(dir.path()).filter((name) => !UNSIGNED.has(name)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const mac: Hmac = createHmac('sha256', key).update(`${SIGNATURE_HEADER}\0uid ${owner}\0`);
  for (const name of names) {
    mac.update(`${name}\0`);
    if (isMemoryPages(name)) {
      if (copyTo) symlinkSync(dir.path(name), join(copyTo, name));
      mac.update('-\0');
      continue;
    }
    const fd = openPlain(dir.path(name), `checkpoint/${name}`);
    const copy = copyTo ? openSync(join(copyTo, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600) : undefined;
    try {
      const digest = createHash('sha256');
      readAll(fd, (chunk) => {
        digest.update(chunk);
        if (copy !== undefined) for (let at = 0; at < chunk.length; ) at += writeSync(copy, chunk, at);
      });
      mac.update(`${digest.digest('hex')}\0`);
    } finally {
      closeSync(fd);
      if (copy !== undefined) closeSync(copy);
    }
  }
  return mac.digest();
}

/** The content of the signature file for the images in DIR (just dumped, still the daemon's alone), for uid OWNER. */
export function signImages(dir: PinnedDir, key: Buffer, owner: number): string {
  return `${SIGNATURE_HEADER} ${imagesMac(dir, key, owner).toString('hex')}\n`;
}

function readSignature(dir: PinnedDir): Buffer {
  const what = `checkpoint/${SIGNATURE_FILE}`;
  let fd: number;
  try {
    fd = openSync(dir.path(SIGNATURE_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Refusal(`${IMAGES_REFUSED}: ${code === 'ENOENT' ? `no signature (${what} is missing)` : `cannot open ${what} (${code})`}`);
  }
  try {
    const buffer = Buffer.alloc(512);
    const n = fstatSync(fd).isFile() ? readSync(fd, buffer, 0, buffer.length, 0) : 0;
    const match = new RegExp(`^${SIGNATURE_HEADER} ([0-9a-f]{64})\n$`).exec(buffer.subarray(0, n).toString('latin1'));
    if (!match) throw new Refusal(`${IMAGES_REFUSED}: ${what} is not a signature of ckpt-daemon's`);
    return Buffer.from(match[1], 'hex');
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the images of DIR into the new, empty, private folder STAGING (see above) and checks
 * their signature over the copy; throws a Refusal when it is missing or does not match. criu
 * then restores from STAGING.
 */
export function stageSignedImages(dir: PinnedDir, key: Buffer, owner: number, staging: string): void {
  const expected = readSignature(dir);
  const actual = imagesMac(dir, key, owner, staging);
  if (!timingSafeEqual(expected, actual)) {
    throw new Refusal(`${IMAGES_REFUSED}: the signature in checkpoint/${SIGNATURE_FILE} does not match the images (a file was changed, added, removed or renamed, they were made for another user, or another key signed them)`);
  }
}

export class ImageKeyError extends Error {}

/**
 * Loads the image key from PATH, creating it (IMAGE_KEY_BYTES random bytes, mode 0600, its
 * folder 0700 if missing) when absent. The key file must be a regular file (not a symlink) of
 * the daemon's own user (root), readable by no one else, in a folder that no one else may write.
 * Returns the key and whether it was created (the caller tells the admin to copy it to every node).
 */
export function loadImageKey(path: string): { key: Buffer; created: boolean } {
  const self = process.geteuid?.() ?? 0;
  const folder = dirname(path);
  let created = false;
  try {
    lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ImageKeyError(`cannot read the image key ${path}: ${(error as Error).message}`);
    try {
      mkdirSync(folder, { recursive: true, mode: 0o700 });
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, randomBytes(IMAGE_KEY_BYTES));
      } finally {
        closeSync(fd);
      }
      created = true;
    } catch (createError) {
      throw new ImageKeyError(`cannot create the image key ${path}: ${(createError as Error).message}`);
    }
  }
  const folderStats = lstatSync(folder);
  if (!folderStats.isDirectory() || (folderStats.uid !== self && folderStats.uid !== 0) || (folderStats.mode & 0o022) !== 0) {
    throw new ImageKeyError(`refusing the image key ${path}: its folder ${folder} must be a directory of root's (or the daemon's user) that no one else may write`);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ImageKeyError(code === 'ELOOP' ? `refusing the image key ${path}: it is a symlink` : `cannot read the image key ${path}: ${(error as Error).message}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new ImageKeyError(`refusing the image key ${path}: not a regular file`);
    if (stats.uid !== self) throw new ImageKeyError(`refusing the image key ${path}: it belongs to uid ${stats.uid}, not to uid ${self} (root)`);
    if ((stats.mode & 0o077) !== 0) {
      throw new ImageKeyError(`refusing the image key ${path}: mode ${(stats.mode & 0o777).toString(8)}, others may read it (chmod 600)`);
    }
    const chunks: Buffer[] = [];
    readAll(fd, (chunk) => chunks.push(Buffer.from(chunk)));
    const key = Buffer.concat(chunks);
    if (key.length < IMAGE_KEY_BYTES) throw new ImageKeyError(`refusing the image key ${path}: ${key.length} bytes, fewer than ${IMAGE_KEY_BYTES}`);
    return { key, created };
  } finally {
    closeSync(fd);
  }
}
