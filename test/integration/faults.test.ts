/**
 * The faults that need no CRIU (any user; the tmpfs case as root): bin/ckpt-run as a real
 * process, the bash fake daemon where a daemon is needed.
 *   4. SIGTERM and SIGINT to ckpt-run (a job deleted, a node shut down, a user's ^C): passed to the
 *      program, ckpt-run exits 128+n once the program is gone, or at once on a second signal;
 *      also while a checkpoint or a resume request is out. No request and no half-written temp
 *      file (`.*.tmp`) stays behind in the spool, and a checkpoint is kept for the next job.
 *   6. the working directory on a node-local filesystem: with OAR_JOB_ID set, a warning at
 *      start that names the filesystem (the resubmitted job may land on another node).
 * Each case prints one result line ("fault: …") for the README's reliability section.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, sleep, treeOf } from '../../src/proc/processes.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { isMountPoint, mountTmpfs, runState, spoolLeftovers, unmount } from '../helpers/fault-system.js';
import { counted, COUNTER, makeSandbox, runCkpt, startFakeDaemon, type Proc, type Sandbox } from '../helpers/launcher-harness.js';
import { processesWhere, procLink } from '../helpers/listed-processes.js';

const AS_ROOT = process.getuid?.() === 0;
if (!AS_ROOT) console.warn('\n*** SKIPPED the tmpfs case of the local-filesystem warning: mounting needs root ***\n');
const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

/** A sandbox (spool + working directory) removed when the test ends. */
function sandboxForTest(): Sandbox {
  const sandbox = makeSandbox('ckpt-faults-it-');
  cleanups.unshift(() => rmSync(sandbox.dir, { recursive: true, force: true }));
  return sandbox;
}

const runDir = (sandbox: Sandbox): string => join(sandbox.workdir, '.ckpt-run', 'default');

/** The processes whose working directory is DIR (the program's tree runs there). */
function processesIn(dir: string): number[] {
  return processesWhere((pid) => procLink(pid, 'cwd') === dir);
}

/** Kills, at the end of the test, whatever of PIDS is still there. */
function killAtEnd(pids: number[]): void {
  cleanups.push(() => killAll(pids, 'SIGKILL'));
}

function fakeDaemon(sandbox: Sandbox, knobs: Record<string, string> = {}): ReturnType<typeof startFakeDaemon> {
  const daemon = startFakeDaemon(sandbox, knobs);
  cleanups.push(daemon.stop);
  return daemon;
}

/** ckpt-run's tree once the program printed LINES lines: [root of the program's tree, …]. */
async function runningTree(job: Proc, lines: number): Promise<number[]> {
  await job.waitFor((p) => counted(p.stdout).length >= lines, `${lines} lines from the program`);
  const tree = treeOf(job.child.pid as number).slice(1);
  killAtEnd(tree);
  return tree;
}

const signalNumber = (signal: NodeJS.Signals): number => constants.signals[signal];

/** A program that ignores SIGTERM and SIGINT, counting on stdout. */
const STUBBORN = ['sh', '-c', 'trap "" TERM INT; i=0; while :; do i=$((i + 1)); echo $i; sleep 0.02; done'];

describe('4. SIGTERM and SIGINT to ckpt-run', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const code = 128 + signalNumber(signal);

    it(`${signal} while the program runs: passed to the program, exit ${code} once it is gone, its tree gone, nothing left in the spool`, async () => {
      const sandbox = sandboxForTest();
      const job = runCkpt(sandbox, ['--job-id', `term-${signal}`, '--', COUNTER, '1000', '0.02', '0']);
      const tree = await runningTree(job, 3);
      job.child.kill(signal);
      await job.expectExit(code);
      expect(job.stderr).toContain(`${signal} received: passing it to the program`);
      expect(job.stderr).not.toContain('exiting now');
      await waitUntil(() => tree.every(isGone), `the program's tree (${tree.join(' ')}) to be gone`);
      expect(spoolLeftovers(sandbox.spool)).toEqual([]);
      // Stopped, not finished: the run keeps the status that decides the next job (a checkpoint would be resumed).
      const state = runState(runDir(sandbox));
      expect(state).toMatchObject({ status: 'running' });
      expect(state.history[0]).toMatchObject({ outcome: 'failed', exitCode: code });
      expect(existsSync(join(runDir(sandbox), 'exit_status'))).toBe(false);
      console.log(`fault: ${signal} to ckpt-run → passed to the program (${tree.length} processes, all gone), exit ${code}, run not marked finished, spool clean`);
    });

    it(`${signal} twice, to a program that ignores it: ckpt-run leaves at once with ${code}, nothing left in the spool`, async () => {
      const sandbox = sandboxForTest();
      const job = runCkpt(sandbox, ['--job-id', `stubborn-${signal}`, '--', ...STUBBORN]);
      const tree = await runningTree(job, 3);
      job.child.kill(signal);
      await job.waitFor((p) => p.stderr.includes(`${signal} received: passing it to the program`), 'the signal to be passed on');
      const printed = counted(job.stdout).length;
      await job.waitFor((p) => counted(p.stdout).length >= printed + 5, 'the program to ignore it and go on');
      expect(job.child.exitCode).toBeNull();
      job.child.kill(signal);
      await job.expectExit(code);
      expect(job.stderr).toContain(`${signal} received; exiting now`);
      expect(spoolLeftovers(sandbox.spool)).toEqual([]);
      expect(runState(runDir(sandbox)).history[0]).toMatchObject({ outcome: 'failed', exitCode: code });
      // As documented, the second signal leaves the program behind (the scheduler's kill reaches it).
      expect(tree.some((pid) => !isGone(pid))).toBe(true);
      console.log(`fault: ${signal} twice to ckpt-run, program ignoring it → ckpt-run left at once with ${code}, spool clean`);
    });
  }

  it('SIGTERM at any moment of the start (40 tries, 0 to 19 ms after ckpt-run starts the run): never lost, never an orphaned program', async () => {
    const outcomes = new Map<string, number>();
    for (let attempt = 0; attempt < 40; attempt++) {
      const sandbox = sandboxForTest();
      const job = runCkpt(sandbox, ['--job-id', `early-${attempt}`, '--', COUNTER, '100', '0.02', '6']);
      await job.waitFor((p) => p.stderr.includes('starting a new run'), 'the start');
      await sleep(attempt % 20);
      job.child.kill('SIGTERM');
      const code = await job.exitCode();
      const { signal } = await job.exited;
      // Stopped either way: 143 from ckpt-run, or (before its handlers exist) by the signal itself.
      expect([code, signal], job.stderr).toSatisfy(([c, s]) => c === 143 || (c === null && s === 'SIGTERM'));
      // An orphaned program would stay for good: the bound only has to outlast a loaded machine.
      await waitUntil(() => processesIn(sandbox.workdir).length === 0, () => `no process left in ${sandbox.workdir} (orphaned program)\n${job.stderr}`);
      const how = code === 143 ? (/while the program starts/.test(job.stderr) ? 'during the spawn' : 'passed to the program') : 'before the handlers';
      outcomes.set(how, (outcomes.get(how) ?? 0) + 1);
    }
    const summary = [...outcomes].map(([how, count]) => `${how}: ${count}`).join(', ');
    console.log(`fault: SIGTERM 0-19 ms into the start, 40 tries → every time stopped, program never orphaned, signal never lost (${summary})`);
  }, 60_000);

  it('SIGTERM to a resumed job: the program stopped is not a finished run, the last checkpoint stays and the next job resumes it', async () => {
    const sandbox = sandboxForTest();
    fakeDaemon(sandbox);
    const argv = ['--', COUNTER, '1000', '0.02', '6'];
    const first = runCkpt(sandbox, ['--job-id', 'stop-1', ...argv]);
    await first.waitFor((p) => counted(p.stdout).length >= 3, 'three lines');
    first.child.kill('SIGUSR2');
    await first.expectExit(99);

    const second = runCkpt(sandbox, ['--job-id', 'stop-2', ...argv]);
    await second.waitFor((p) => /program restored as PID \d+/.test(p.stderr) && counted(p.stdout).length >= 3, 'the resumed program');
    second.child.kill('SIGTERM');
    await second.expectExit(143);
    expect(runState(runDir(sandbox))).toMatchObject({ status: 'running', restarts: 1 });
    expect(runState(runDir(sandbox)).history[1]).toMatchObject({ outcome: 'failed', exitCode: 143 });

    const third = runCkpt(sandbox, ['--job-id', 'stop-3', ...argv]);
    await third.waitFor((p) => (/program restored as PID \d+/.test(p.stderr) && counted(p.stdout).length >= 3) || p.child.exitCode !== null, 'the third job to resume');
    expect(third.stderr).toContain('resuming the checkpoint');
    third.child.kill('SIGTERM');
    await third.expectExit(143);
    expect(spoolLeftovers(sandbox.spool)).toEqual([]);
    console.log('fault: SIGTERM to a resumed job → exit 143, run not marked finished, the last checkpoint kept; the next job resumed it');
  });

  it('SIGTERM while a checkpoint request is unread: exit 143 once the program is gone, the request withdrawn, no temp file', async () => {
    const sandbox = sandboxForTest();
    const job = runCkpt(sandbox, ['--job-id', 'term-dump', '--no-daemon-check', '--', COUNTER, '1000', '0.02', '0']);
    const tree = await runningTree(job, 3);
    job.child.kill('SIGUSR2');
    await job.waitFor((p) => /checkpoint requested for PID \d+/.test(p.stderr), 'the checkpoint request');
    expect(spoolLeftovers(sandbox.spool)).toEqual(['term-dump.checkpoint']);
    job.child.kill('SIGTERM');
    await job.expectExit(143);
    await waitUntil(() => tree.every(isGone), "the program's tree to be gone");
    expect(spoolLeftovers(sandbox.spool)).toEqual([]);
    console.log('fault: SIGTERM while a checkpoint request is unread → exit 143 once the program is gone, request withdrawn, no temp file');
  });

  it('SIGUSR2 and SIGTERM back to back, 10 jobs at once: every job exits 143, no request and no temp file left', async () => {
    const sandbox = sandboxForTest();
    const jobs = Array.from({ length: 10 }, (_, n) =>
      runCkpt(sandbox, ['--job-id', `race-${n}`, '--run-id', `race-${n}`, '--no-daemon-check', '--', COUNTER, '1000', '0.02', '0']),
    );
    await Promise.all(jobs.map((job) => runningTree(job, 1)));
    for (const job of jobs) {
      job.child.kill('SIGUSR2');
      job.child.kill('SIGTERM');
    }
    expect(await Promise.all(jobs.map((job) => job.exitCode()))).toEqual(Array(10).fill(143));
    expect(spoolLeftovers(sandbox.spool)).toEqual([]);
    console.log('fault: SIGUSR2 + SIGTERM back to back in 10 jobs at once → all exit 143, spool clean (no request, no .tmp)');
  });

  it('SIGTERM while a resume is awaited: exit 143 at once, the request withdrawn, the checkpoint kept; the next job resumes it', async () => {
    const sandbox = sandboxForTest();
    const daemon = fakeDaemon(sandbox);
    const argv = ['--', COUNTER, '60', '0.02', '6'];
    const first = runCkpt(sandbox, ['--job-id', 'resume-1', ...argv]);
    await first.waitFor((p) => counted(p.stdout).length >= 3, 'three lines');
    first.child.kill('SIGUSR2');
    await first.expectExit(99);
    daemon.stop();

    const second = runCkpt(sandbox, ['--job-id', 'resume-2', '--no-daemon-check', ...argv]);
    await second.waitFor((p) => p.stderr.includes('resuming the checkpoint'), 'the resume request');
    await waitUntil(() => spoolLeftovers(sandbox.spool).includes('resume-2.resume'), 'the resume request in the spool');
    second.child.kill('SIGTERM');
    await second.expectExit(143);
    expect(second.stderr).toContain('SIGTERM received; exiting now');
    expect(spoolLeftovers(sandbox.spool)).toEqual([]);
    expect(runState(runDir(sandbox))).toMatchObject({ status: 'running', restarts: 1 });

    fakeDaemon(sandbox);
    const third = runCkpt(sandbox, ['--job-id', 'resume-3', ...argv]);
    await third.expectExit(6);
    expect(third.stderr).toMatch(/program restored as PID \d+/);
    console.log('fault: SIGTERM while waiting for a restore → exit 143 at once, request withdrawn, checkpoint kept; next job resumed it, exit 6');
  });
});

/** statfs type → the name ckpt-run gives it (src/launcher/shared-filesystem.ts), for the filesystems met here. */
const LOCAL_NAMES: Record<number, string> = { 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x794c7630: 'overlayfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs' };

async function startWarnings(sandbox: Sandbox, env: NodeJS.ProcessEnv, args: string[]): Promise<string[]> {
  const job = runCkpt(sandbox, [...args, '--min-runtime', '0', '--', 'true'], env);
  await job.expectExit(0);
  const lines = job.stderr.trim().split('\n');
  const start = lines.findIndex((line) => /job \S+, run \S+: starting a new run/.test(line));
  expect(start).toBeGreaterThanOrEqual(0);
  // "At start": before the job says what it does, so before the program runs.
  return lines.slice(0, start).filter((line) => line.includes('warn: the working directory'));
}

describe('6. the working directory on a node-local filesystem', () => {
  it('under OAR (OAR_JOB_ID set): a warning at start that names the filesystem', async () => {
    const sandbox = sandboxForTest();
    const type = statfsSync(sandbox.workdir).type;
    const name = LOCAL_NAMES[type] ?? `type 0x${type.toString(16)}`;
    const warnings = await startWarnings(sandbox, { OAR_JOB_ID: '4242' }, []);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`the working directory ${sandbox.workdir} is on a local filesystem (${name})`);
    expect(warnings[0]).toContain('a resubmitted job on another node will not find its checkpoint');
    // Outside a scheduler (a local try), no warning.
    expect(await startWarnings(sandbox, {}, ['--job-id', 'local'])).toEqual([]);
    console.log(`fault: working directory on ${name} under OAR → warning at start: "${warnings[0].replace(/^.*warn: /, '')}"`);
  });

  it.runIf(AS_ROOT)('under OAR, on a tmpfs mount: the warning names tmpfs', async () => {
    const base = mkdtempSync('/tmp/ckpt-faults-tmpfs-');
    const sandbox = { ...sandboxForTest(), workdir: join(base, 'mnt') };
    mkdirSync(sandbox.workdir);
    mountTmpfs(sandbox.workdir, 8 * 1024 * 1024);
    try {
      const warnings = await startWarnings(sandbox, { OAR_JOB_ID: '4243' }, []);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`the working directory ${sandbox.workdir} is on a local filesystem (tmpfs)`);
      console.log(`fault: working directory on a tmpfs mount under OAR → warning at start naming tmpfs`);
    } finally {
      unmount(sandbox.workdir);
      expect(isMountPoint(sandbox.workdir)).toBe(false);
      rmSync(base, { recursive: true, force: true });
    }
  });
});
