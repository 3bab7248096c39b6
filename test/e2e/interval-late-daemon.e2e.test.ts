/**
 * A job with --interval started before its node's daemon is up (the daemon restarting, being
 * upgraded): it asks again at each interval, and once the real ckpt-daemon's heartbeat says it can
 * leave the program running, the job's periodic checkpoints start, on real CRIU; the final
 * checkpoint and the resume go on as usual. Lean: one run of ~20 s.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted, COUNTER, makeSandbox, runCkpt, type Sandbox } from '../helpers/launcher-harness.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { criuReady, realPartAvailable } from '../helpers/real-parts.js';
import { ensureBuilt } from '../helpers/build.js';

describe.runIf(realPartAvailable('--interval before the daemon is up, on real CRIU', criuReady()))('--interval with a daemon that comes up after the job started', () => {
  let sandbox: Sandbox;
  let daemon: RealDaemon | undefined;

  beforeAll(() => {
    ensureBuilt();
    sandbox = makeSandbox('ckpt-late-daemon-e2e-');
  });

  afterAll(async () => {
    if (daemon) expect(await daemon.stop()).toBe(0);
    if (sandbox) rmSync(sandbox.dir, { recursive: true, force: true });
  });

  it('asks at each interval; periodic checkpoints start once the real daemon is up; final checkpoint, resume, every line once, exit 7', async () => {
    const argv = ['--run-id', 'late', '--min-runtime', '0', '--interval', '2', '--', COUNTER, '150', '0.1', '7'];
    const job = runCkpt(sandbox, ['--job-id', 'late-1', ...argv]);
    await job.waitFor((p) => /--interval: no periodic checkpoint for now: no ckpt-daemon heartbeat/.test(p.stderr) && counted(p.stdout).length >= 25, 'the job to run 2 intervals without a daemon');
    expect(job.stderr).not.toMatch(/periodic checkpoint requested/);

    const startedAt = Date.now();
    daemon = await RealDaemon.start({ spool: sandbox.spool, logPath: join(sandbox.dir, 'daemon.log'), criu: 'criu', imageKey: join(sandbox.dir, 'image-key', 'image.key') });
    await job.waitFor((p) => (p.stderr.match(/periodic checkpoint complete in /g) ?? []).length >= 2, 'two periodic checkpoints on real CRIU', 30_000);
    const firstPeriodicMs = Date.now() - startedAt;
    expect(job.stderr).toMatch(/--interval: the node's daemon can now leave the program running: periodic checkpoints start, every 2 s/);
    // The real daemon made them, leaving the program running.
    await daemon.logged(/^.*job late-1: .* done in /, "the daemon's report of a checkpoint of job late-1");

    job.child.kill('SIGUSR2');
    await job.expectExit(99, 60_000);
    const resumed = runCkpt(sandbox, ['--job-id', 'late-2', ...argv]);
    await resumed.expectExit(7, 60_000);
    expect(resumed.stderr).toMatch(/program restored as PID \d+/);
    const lines = [...counted(job.stdout), ...counted(resumed.stdout)];
    expect(lines).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    const periodic = job.stderr.match(/periodic checkpoint complete in [^\n]*/g) ?? [];
    console.log(`real CRIU, daemon up after the job started: ${periodic.length} periodic checkpoints, the second done ${(firstPeriodicMs / 1000).toFixed(1)} s after the daemon started (e.g. "${periodic[0]}"); final checkpoint, resume, lines 1..150 once, exit 7`);
  }, 120_000);
});
