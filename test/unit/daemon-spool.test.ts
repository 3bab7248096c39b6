/** The spool folder: preparing it, taking requests out of it, and serving them in order. */
import { chownSync, existsSync, mkdirSync, openSync, closeSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyedQueue } from '../../src/daemon/keyed-queue.js';
import { HALF_WRITTEN_GRACE_MS, pickUp, prepareSpool, PRIVATE_FOLDER } from '../../src/daemon/spool.js';
import { AS_ROOT, cleanUp, STRANGER, tempDir } from '../helpers/daemon-fixtures.js';

afterEach(cleanUp);

describe('prepareSpool', () => {
  it('creates the spool mode 1777 and a private folder mode 0700', () => {
    const spool = join(tempDir(), 'spool');
    const privateDir = prepareSpool(spool);
    expect(statSync(spool).mode & 0o7777).toBe(0o1777);
    expect(privateDir).toBe(join(spool, PRIVATE_FOLDER));
    expect(statSync(privateDir).mode & 0o7777).toBe(0o700);
    expect(prepareSpool(spool)).toBe(privateDir);
  });

  it('refuses a private folder that someone planted as a symlink', () => {
    const spool = tempDir();
    symlinkSync(tempDir(), join(spool, PRIVATE_FOLDER));
    expect(() => prepareSpool(spool)).toThrow(/private folder .* is not a directory \(a symlink\?\)/);
  });

  it('refuses a private folder open to others', () => {
    const spool = tempDir();
    mkdirSync(join(spool, PRIVATE_FOLDER), { mode: 0o755 });
    expect(() => prepareSpool(spool)).toThrow('is open to other users');
  });

  it.runIf(AS_ROOT)("refuses a spool or private folder that is not the daemon's", () => {
    const spool = tempDir();
    mkdirSync(join(spool, PRIVATE_FOLDER), { mode: 0o700 });
    chownSync(join(spool, PRIVATE_FOLDER), STRANGER, STRANGER);
    expect(() => prepareSpool(spool)).toThrow(`belongs to uid ${STRANGER}, not to the daemon`);
    chownSync(spool, STRANGER, STRANGER);
    expect(() => prepareSpool(spool)).toThrow(/spool folder .* belongs to uid/);
  });
});

describe('pickUp', () => {
  function spool(): { spoolDir: string; privateDir: string } {
    const spoolDir = join(tempDir(), 'spool');
    return { spoolDir, privateDir: prepareSpool(spoolDir) };
  }

  it('takes a complete request out of the spool at once', () => {
    const { spoolDir, privateDir } = spool();
    writeFileSync(join(spoolDir, '42.checkpoint'), '123\n/tmp/x\n');
    const picked = pickUp(spoolDir, privateDir, '42.checkpoint');
    expect(picked).toMatchObject({ jobId: '42', kind: 'checkpoint' });
    expect(picked?.path.startsWith(`${privateDir}/`)).toBe(true);
    expect(existsSync(join(spoolDir, '42.checkpoint'))).toBe(false);
    expect(pickUp(spoolDir, privateDir, '42.checkpoint')).toBeUndefined();
  });

  it('leaves alone what is not a request: heartbeat, temp files, bad job ids', () => {
    const { spoolDir, privateDir } = spool();
    for (const name of ['ckpt-daemon.heartbeat', '.42.checkpoint.123.tmp', '../x.resume', 'a b.resume', '42.restore']) {
      expect(pickUp(spoolDir, privateDir, name)).toBeUndefined();
    }
  });

  it('waits for a request still being written (no final newline yet), then takes it as it is', () => {
    const { spoolDir, privateDir } = spool();
    const path = join(spoolDir, '42.resume');
    closeSync(openSync(path, 'w'));
    expect(pickUp(spoolDir, privateDir, '42.resume')).toBeUndefined();
    writeFileSync(path, '/tmp/x');
    expect(pickUp(spoolDir, privateDir, '42.resume')).toBeUndefined();
    const old = new Date(Date.now() - HALF_WRITTEN_GRACE_MS - 1000);
    utimesSync(path, old, old);
    expect(pickUp(spoolDir, privateDir, '42.resume')).toMatchObject({ jobId: '42', kind: 'resume' });
  });

  it('takes symlinks and FIFOs at once (to refuse them), without following or opening them', () => {
    const { spoolDir, privateDir } = spool();
    symlinkSync('/etc/passwd', join(spoolDir, '7.resume'));
    expect(pickUp(spoolDir, privateDir, '7.resume')).toMatchObject({ jobId: '7' });
  });
});

describe('KeyedQueue', () => {
  /** A task that records its start and end, and finishes when told. */
  function gate(log: string[], name: string) {
    let open: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => (open = resolve));
    return {
      open,
      task: async () => {
        log.push(`${name} start`);
        await opened;
        log.push(`${name} end`);
      },
    };
  }

  it('runs tasks sharing a key one after the other, and other keys meanwhile', async () => {
    const log: string[] = [];
    const queue = new KeyedQueue((error) => log.push(`error ${error.message}`));
    const a1 = gate(log, 'a1');
    const a2 = gate(log, 'a2');
    const b = gate(log, 'b');
    queue.run(['job a', 'dir x'], a1.task);
    queue.run(['job a2', 'dir x'], a2.task);
    queue.run(['job b', 'dir y'], b.task);
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual(['a1 start', 'b start']);
    b.open();
    a1.open();
    a2.open();
    await queue.idle();
    expect(log).toEqual(['a1 start', 'b start', 'b end', 'a1 end', 'a2 start', 'a2 end']);
  });

  it('goes on after a failing task, and reports the failure', async () => {
    const log: string[] = [];
    const queue = new KeyedQueue((error) => log.push(`error ${error.message}`));
    queue.run(['k'], async () => {
      throw new Error('boom');
    });
    queue.run(['k'], async () => {
      log.push('next');
    });
    await queue.idle();
    expect(log).toEqual(['error boom', 'next']);
  });
});
