/**
 * Signed images (src/daemon/image-signature.ts): what the signature covers (every name, every
 * content but the memory pages), the private copy criu restores from, and the key file's
 * checks. The daemon refusing changed images: test/integration/daemon-signed-images.test.ts.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  IMAGE_KEY_BYTES, IMAGES_REFUSED, loadImageKey, SIGNATURE_FILE, signImages, stageSignedImages,
} from '../../src/daemon/image-signature.js';
import { PinnedDir } from '../../src/daemon/pinned-dir.js';
import { AS_ROOT, cleanUp, STRANGER, tempDir } from '../helpers/daemon-fixtures.js';

const KEY = randomBytes(IMAGE_KEY_BYTES);
/** What the refusal of changed images says after the reason. */
const CHANGED = '(a file was changed, added, removed or renamed, they were made for another user, or another key signed them)';

const opened: PinnedDir[] = [];
afterEach(() => {
  for (const dir of opened.splice(0)) dir.close();
  cleanUp();
});

const pin = (path: string): PinnedDir => {
  const dir = PinnedDir.open(path);
  opened.push(dir);
  return dir;
};

/** A folder shaped like criu's images, signed with KEY. */
/** The uid the images are signed for (the requester of the dump). */
const OWNER = 1000;

function signedImages(): string {
  const dir = join(tempDir(), 'checkpoint');
  mkdirSync(dir);
  writeFileSync(join(dir, 'core-1.img'), 'core of the process');
  writeFileSync(join(dir, 'files.img'), Buffer.from([1, 2, 3, 4, 0x42, 6, 7, 8]));
  writeFileSync(join(dir, 'pagemap-1.img'), 'pagemap');
  writeFileSync(join(dir, 'pages-1.img'), 'the memory of the program');
  writeFileSync(join(dir, 'dump.log'), 'criu said\n');
  writeFileSync(join(dir, SIGNATURE_FILE), signImages(pin(dir), KEY, OWNER));
  return dir;
}

const verdict = (dir: string, key = KEY, owner = OWNER): string => {
  try {
    stageSignedImages(pin(dir), key, owner, tempDir());
    return 'valid';
  } catch (error) {
    return (error as Error).message;
  }
};

describe('image signatures', () => {
  it('accepts the images as signed, and whatever the memory pages hold', () => {
    const dir = signedImages();
    expect(readFileSync(join(dir, SIGNATURE_FILE), 'utf8')).toMatch(/^ckpt-daemon image signature v1 hmac-sha256 [0-9a-f]{64}\n$/);
    expect(verdict(dir)).toBe('valid');
    writeFileSync(join(dir, 'pages-1.img'), 'other memory, of another size');
    expect(verdict(dir)).toBe('valid');
    // The daemon's pidfile, written after a restore, is not part of the images.
    writeFileSync(join(dir, 'pidfile'), '1234\n');
    expect(verdict(dir)).toBe('valid');
  });

  it('refuses images whose metadata changed by one byte, one bit, or in size', () => {
    for (const change of [
      (path: string) => writeFileSync(path, Buffer.from([1, 2, 3, 4, 0x43, 6, 7, 8])),
      (path: string) => writeFileSync(path, Buffer.from([1, 2, 3, 4, 0x42, 6, 7, 9])),
      (path: string) => writeFileSync(path, Buffer.from([1, 2, 3, 4, 0x42, 6, 7, 8, 0])),
      (path: string) => writeFileSync(path, ''),
    ]) {
      const dir = signedImages();
      change(join(dir, 'files.img'));
      expect(verdict(dir)).toBe(`${IMAGES_REFUSED}: the signature in checkpoint/${SIGNATURE_FILE} does not match the images ${CHANGED}`);
    }
    const dir = signedImages();
    writeFileSync(join(dir, 'dump.log'), 'criu said!\n');
    expect(verdict(dir)).toMatch(new RegExp(`^${IMAGES_REFUSED}: `));
  });

  it('refuses images with a file added, removed or renamed (memory pages included)', () => {
    const changes: Record<string, (dir: string) => void> = {
      'a metadata file added': (dir) => writeFileSync(join(dir, 'ghost-file-9.img'), ''),
      'a pages file added': (dir) => writeFileSync(join(dir, 'pages-2.img'), ''),
      'a metadata file removed': (dir) => unlinkSync(join(dir, 'pagemap-1.img')),
      'the pages removed': (dir) => unlinkSync(join(dir, 'pages-1.img')),
      'a metadata file renamed': (dir) => renameSync(join(dir, 'core-1.img'), join(dir, 'core-2.img')),
      'the pages renamed': (dir) => renameSync(join(dir, 'pages-1.img'), join(dir, 'pages-2.img')),
      'two files swapping contents': (dir) => {
        renameSync(join(dir, 'core-1.img'), join(dir, 'swap'));
        renameSync(join(dir, 'pagemap-1.img'), join(dir, 'core-1.img'));
        renameSync(join(dir, 'swap'), join(dir, 'pagemap-1.img'));
      },
    };
    for (const [what, change] of Object.entries(changes)) {
      const dir = signedImages();
      change(dir);
      expect(verdict(dir), what).toMatch(new RegExp(`^${IMAGES_REFUSED}: the signature .* does not match`));
    }
  });

  it('refuses images signed with another key, and images without a signature or with a malformed one', () => {
    expect(verdict(signedImages(), randomBytes(IMAGE_KEY_BYTES))).toMatch(/does not match the images/);
    const unsigned = signedImages();
    unlinkSync(join(unsigned, SIGNATURE_FILE));
    expect(verdict(unsigned)).toBe(`${IMAGES_REFUSED}: no signature (checkpoint/${SIGNATURE_FILE} is missing)`);
    for (const content of ['', 'ckpt-daemon image signature v1 hmac-sha256 00\n', `${'x'.repeat(600)}\n`]) {
      const dir = signedImages();
      writeFileSync(join(dir, SIGNATURE_FILE), content);
      expect(verdict(dir)).toBe(`${IMAGES_REFUSED}: checkpoint/${SIGNATURE_FILE} is not a signature of ckpt-daemon's`);
    }
    const linked = signedImages();
    const elsewhere = join(tempDir(), 'sig');
    renameSync(join(linked, SIGNATURE_FILE), elsewhere);
    symlinkSync(elsewhere, join(linked, SIGNATURE_FILE));
    expect(verdict(linked)).toMatch(new RegExp(`^${IMAGES_REFUSED}: cannot open checkpoint/${SIGNATURE_FILE} \\(ELOOP\\)`));
  });

  it("refuses images signed for another user: one user's images handed to another never reach criu", () => {
    const dir = signedImages();
    expect(verdict(dir, KEY, OWNER)).toBe('valid');
    expect(verdict(dir, KEY, OWNER + 1)).toMatch(new RegExp(`^${IMAGES_REFUSED}: the signature in checkpoint/${SIGNATURE_FILE} does not match`));
    expect(verdict(dir, KEY, 0)).toMatch(new RegExp(`^${IMAGES_REFUSED}: `));
  });

  it('stages a private copy for criu: signed files copied, pages linked to the pinned originals', () => {
    const dir = signedImages();
    const images = pin(dir);
    const staging = tempDir();
    stageSignedImages(images, KEY, OWNER, staging);
    expect(readdirSync(staging).sort()).toEqual(['core-1.img', 'dump.log', 'files.img', 'pagemap-1.img', 'pages-1.img']);
    expect(readlinkSync(join(staging, 'pages-1.img'))).toBe(images.path('pages-1.img'));
    expect(lstatSync(join(staging, 'files.img')).isFile()).toBe(true);
    expect(statSync(join(staging, 'files.img')).mode & 0o777).toBe(0o600);
    // A change made afterwards (through a descriptor the user kept) does not reach the copy.
    writeFileSync(join(dir, 'files.img'), 'O_TRUNC /etc/passwd');
    expect(readFileSync(join(staging, 'files.img'))).toEqual(Buffer.from([1, 2, 3, 4, 0x42, 6, 7, 8]));

    const changed = signedImages();
    writeFileSync(join(changed, 'files.img'), 'O_TRUNC /etc/passwd');
    expect(() => stageSignedImages(pin(changed), KEY, OWNER, tempDir())).toThrow(`${IMAGES_REFUSED}: the signature in checkpoint/${SIGNATURE_FILE} does not match`);
  });
});

describe('the image key file', () => {
  it('is created when absent (random, mode 0600, in a 0700 folder), then read as it is', () => {
    const path = join(tempDir(), 'etc-ckpt-daemon', 'image.key');
    const first = loadImageKey(path);
    expect(first.created).toBe(true);
    expect(first.key.length).toBe(IMAGE_KEY_BYTES);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o700);
    expect(statSync(path).uid).toBe(process.geteuid?.());
    const again = loadImageKey(path);
    expect(again).toEqual({ key: first.key, created: false });
    expect(loadImageKey(join(tempDir(), 'other', 'image.key')).key.equals(first.key)).toBe(false);
  });

  it('is refused when it is a symlink, readable by others, too short, or in a folder others may write', () => {
    const folder = tempDir();
    const real = join(folder, 'real.key');
    writeFileSync(real, randomBytes(IMAGE_KEY_BYTES), { mode: 0o600 });
    symlinkSync(real, join(folder, 'link.key'));
    expect(() => loadImageKey(join(folder, 'link.key'))).toThrow(/it is a symlink/);
    writeFileSync(join(folder, 'open.key'), randomBytes(IMAGE_KEY_BYTES), { mode: 0o644 });
    chmodSync(join(folder, 'open.key'), 0o644);
    expect(() => loadImageKey(join(folder, 'open.key'))).toThrow(/mode 644, others may read it/);
    writeFileSync(join(folder, 'short.key'), randomBytes(8), { mode: 0o600 });
    expect(() => loadImageKey(join(folder, 'short.key'))).toThrow(/8 bytes, fewer than 32/);
    const shared = join(tempDir(), 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    writeFileSync(join(shared, 'image.key'), randomBytes(IMAGE_KEY_BYTES), { mode: 0o600 });
    expect(() => loadImageKey(join(shared, 'image.key'))).toThrow(/no one else may write/);
  });

  it.runIf(AS_ROOT)("is refused when it is not root's", () => {
    const path = join(tempDir(), 'image.key');
    writeFileSync(path, randomBytes(IMAGE_KEY_BYTES), { mode: 0o600 });
    chownSync(path, STRANGER, STRANGER);
    expect(() => loadImageKey(path)).toThrow(`refusing the image key ${path}: it belongs to uid ${STRANGER}, not to uid 0 (root)`);
  });
});
