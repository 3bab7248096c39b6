/**
 * ckpt-daemon (in-process, restart engine, real processes) refusing changed or foreign images
 * before the engine runs, and restoring its own (src/daemon/image-signature.ts; the signature
 * itself: test/unit/daemon-image-signature.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IMAGE_KEY_BYTES, IMAGES_REFUSED, SIGNATURE_FILE } from '../../src/daemon/image-signature.js';
import type { CheckpointEngine, DumpFigures, DumpTarget, RestoredTree, RestoreTarget } from '../../src/engine/engine.js';
import { RestartEngine } from '../../src/engine/restart/restart.js';
import { parseDaemonReport } from '../../src/protocol/daemon-report.js';
import { cleanUp, killAtCleanUp, startTree, tempDir } from '../helpers/daemon-fixtures.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon-harness.js';

let daemon: TestDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  cleanUp();
});

/** The restart engine, recording whether a restore reached it. */
class RecordingEngine implements CheckpointEngine {
  readonly name = 'recording';
  restores = 0;
  private readonly inner = new RestartEngine();

  dump(target: DumpTarget): Promise<DumpFigures> {
    return this.inner.dump(target);
  }

  restore(target: RestoreTarget): Promise<RestoredTree> {
    this.restores += 1;
    return this.inner.restore(target);
  }
}

describe('ckpt-daemon and signed images', () => {
  it('restores its own images, and refuses changed or foreign ones before the engine runs', async () => {
    const base = tempDir();
    const dir = join(base, 'run');
    mkdirSync(dir);
    const engine = new RecordingEngine();
    daemon = await startTestDaemon(base, engine);
    const pid = await startTree(['sh', '-c', `echo $$ >> ${dir}/pids; sleep 100`], { cwd: dir });
    daemon.request({ kind: 'checkpoint', jobId: 'd', pid, dir });
    expect(await daemon.event('dump', 'd')).toMatchObject({ ok: true });
    const images = join(dir, 'checkpoint');
    expect(readdirSync(images)).toContain(SIGNATURE_FILE);
    const cmdline = readFileSync(join(images, 'cmdline'));

    // Changed: the command line to start (the restart engine's "images").
    writeFileSync(join(images, 'cmdline'), 'touch\0/tmp/not-by-the-daemon\0');
    daemon.request({ kind: 'resume', jobId: 'changed', dir });
    const changed = await daemon.event('restore', 'changed');
    expect(changed).toMatchObject({ ok: false });
    expect(changed.reason).toBe(`${IMAGES_REFUSED}: the signature in checkpoint/${SIGNATURE_FILE} does not match the images (a file was changed, added, removed or renamed, they were made for another user, or another key signed them)`);
    expect(parseDaemonReport(readFileSync(join(dir, 'restore_failed'), 'utf8'))).toEqual({ reason: changed.reason, retryable: false, log: undefined });
    expect(await daemon.logged(/refused restore of .* images not made by this cluster's ckpt-daemon/)).toBeTruthy();
    expect(engine.restores).toBe(0);
    expect(existsSync('/tmp/not-by-the-daemon')).toBe(false);

    // Signed by another daemon (another key): refused too.
    writeFileSync(join(images, 'cmdline'), cmdline);
    await daemon.stop();
    daemon = await startTestDaemon(base, engine, randomBytes(IMAGE_KEY_BYTES));
    daemon.request({ kind: 'resume', jobId: 'foreign', dir });
    expect((await daemon.event('restore', 'foreign')).reason).toMatch(/does not match the images/);
    expect(engine.restores).toBe(0);

    // The images as the daemon made them: restored.
    await daemon.stop();
    daemon = await startTestDaemon(base, engine);
    daemon.request({ kind: 'resume', jobId: 'legit', dir });
    expect(await daemon.event('restore', 'legit')).toMatchObject({ ok: true });
    expect(engine.restores).toBe(1);
    killAtCleanUp(Number(readFileSync(join(images, 'pidfile'), 'utf8')));
  });
});
