/** Reading spool request files that users control: real files, symlinks, FIFOs, hard links. */
import { chownSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { readRequestFile } from '../../src/daemon/request-file.js';
import { MAX_REQUEST_BYTES } from '../../src/protocol/spool-request.js';
import { AS_ROOT, cleanUp, STRANGER, tempDir } from '../helpers/daemon-fixtures.js';

afterEach(cleanUp);

describe('readRequestFile', () => {
  it('reads a regular request and names its owner', () => {
    const path = join(tempDir(), '12.checkpoint');
    writeFileSync(path, '123\n/tmp/x\n');
    expect(readRequestFile(path)).toEqual({ owner: process.getuid?.(), body: '123\n/tmp/x\n' });
  });

  it.runIf(AS_ROOT)("reports a stranger's file as the stranger's request", () => {
    const path = join(tempDir(), '12.resume');
    writeFileSync(path, '/tmp/x\n');
    chownSync(path, STRANGER, STRANGER);
    expect(readRequestFile(path).owner).toBe(STRANGER);
  });

  it('refuses a symlink, even to a valid request', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'real'), '/tmp/x\n');
    symlinkSync(join(dir, 'real'), join(dir, '12.resume'));
    expect(() => readRequestFile(join(dir, '12.resume'))).toThrow('the request is a symlink');
  });

  it('refuses a FIFO without blocking on it', () => {
    const path = join(tempDir(), '12.resume');
    execFileSync('mkfifo', [path]);
    expect(() => readRequestFile(path)).toThrow('the request is a FIFO, not a regular file');
  });

  it('refuses a folder', () => {
    const path = join(tempDir(), '12.resume');
    mkdirSync(path);
    expect(() => readRequestFile(path)).toThrow('the request is a directory');
  });

  it(`refuses a file over ${MAX_REQUEST_BYTES} bytes`, () => {
    const path = join(tempDir(), '12.resume');
    writeFileSync(path, `/${'x'.repeat(10 * 1024 * 1024)}\n`);
    expect(() => readRequestFile(path)).toThrow(`is ${10 * 1024 * 1024 + 2} bytes, more than ${MAX_REQUEST_BYTES}`);
  });

  it('refuses a file with another hard link: its owner could be someone else', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'victim'), '/tmp/x\n');
    linkSync(join(dir, 'victim'), join(dir, '12.resume'));
    expect(() => readRequestFile(join(dir, '12.resume'))).toThrow('other hard links');
  });
});
