/**
 * The daemon end to end without CRIU: the restart engine, or a scripted engine, on a temporary
 * spool, with requests written as ckpt-run writes them. Runs as any user.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineError, type CheckpointEngine, type DumpFigures } from '../../src/engine/engine.js';
import { RestartEngine } from '../../src/engine/restart/restart.js';
import { parseDaemonReport } from '../../src/protocol/daemon-report.js';
import { HEARTBEAT_FILE, heartbeatFeatures } from '../../src/protocol/heartbeat.js';
import { parseCheckpointStats } from '../../src/protocol/run-dir.js';
import { AS_ROOT, cleanUp, isGone, killAtCleanUp, startTree, tempDir } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { mountTmpfs, resizeTmpfs, unmount } from '../helpers/fault-system.js';
import { realPartAvailable } from '../helpers/real-parts.js';
import { nodeLocalBytes, treeMemoryBytes } from '../../src/daemon/dump-room.js';
import { PinnedDir } from '../../src/daemon/pinned-dir.js';
import { signAsTheDaemon, startTestDaemon, type TestDaemon } from '../helpers/daemon-harness.js';

let daemon: TestDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  cleanUp();
});

function runDir(base: string, name = 'run'): string {
  const dir = join(base, name);
  mkdirSync(dir);
  return dir;
}

const identity = (path: string): string => {
  const stats = statSync(path);
  return `${stats.ino}:${stats.mtimeMs}`;
};

/** A program that appends its PID to DIR/pids, then waits (no exec: the restart engine reruns its command line). */
const program = (dir: string) => startTree(['sh', '-c', `echo $$ >> ${dir}/pids; sleep 100`], { cwd: dir });

describe('ckpt-daemon with the restart engine', () => {
  /** A run folder with a checkpoint of job j1's program, served by a fresh daemon. */
  async function checkpointedRun(): Promise<{ dir: string; served: TestDaemon }> {
    const base = tempDir();
    const dir = runDir(base);
    const served = await startTestDaemon(base, new RestartEngine());
    daemon = served;
    const pid = await program(dir);
    served.request({ kind: 'checkpoint', jobId: 'j1', pid, dir });
    expect(await served.event('dump', 'j1')).toMatchObject({ ok: true });
    return { dir, served };
  }

  it('checkpoints (a new checkpoint_ok each time, the previous images kept as checkpoint.old) and resumes', async () => {
    const base = tempDir();
    const dir = runDir(base);
    daemon = await startTestDaemon(base, new RestartEngine());
    expect(existsSync(join(daemon.spoolDir, HEARTBEAT_FILE))).toBe(true);

    const first = await program(dir);
    daemon.request({ kind: 'checkpoint', jobId: 'j1', pid: first, dir });
    expect(await daemon.event('dump', 'j1')).toMatchObject({ ok: true, dir, imageBytes: expect.any(Number) });
    expect(existsSync(join(daemon.spoolDir, 'j1.checkpoint'))).toBe(false);
    expect(isGone(first)).toBe(true);
    expect(readdirSync(join(dir, 'checkpoint')).sort()).toEqual(['ckpt-daemon.sig', 'cmdline', 'cwd', 'environ']);
    const firstOk = identity(join(dir, 'checkpoint_ok'));

    daemon.request({ kind: 'resume', jobId: 'j2', dir });
    expect(await daemon.event('restore', 'j2')).toMatchObject({ ok: true });
    const restored = Number(readFileSync(join(dir, 'checkpoint/pidfile'), 'utf8'));
    killAtCleanUp(restored);
    await waitUntil(() => readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').length === 2, 'the restarted program');
    expect(readFileSync(join(dir, 'pids'), 'utf8')).toBe(`${first}\n${restored}\n`);

    daemon.request({ kind: 'checkpoint', jobId: 'j2', pid: restored, dir });
    expect(await daemon.event('dump', 'j2')).toMatchObject({ ok: true });
    expect(identity(join(dir, 'checkpoint_ok'))).not.toBe(firstOk);
    expect(readdirSync(dir).filter((name) => name.startsWith('checkpoint')).sort()).toEqual(['checkpoint', 'checkpoint.old', 'checkpoint_ok', 'checkpoint_stats']);
    expect(readdirSync(join(dir, 'checkpoint.old'))).toContain('pidfile');
    expect(parseCheckpointStats(readFileSync(join(dir, 'checkpoint_stats'), 'utf8'))).toEqual({ bytes: expect.any(Number), leftRunning: false });
    expect(daemon.lines.join('\n')).toMatch(/info: job j1: dump of PID \d+ into .* done in \d+\.\d{3} s \(0\.0 MB\)/);
  });

  it('restores only the checkpoint the job rolled its files back to (resume_from): another one is a retryable failure', async () => {
    const { dir, served: daemon } = await checkpointedRun();
    writeFileSync(join(dir, 'resume_from'), '1:2\n'); // the checkpoint_ok of a dump before this one
    daemon.request({ kind: 'resume', jobId: 'j2', dir });
    expect(await daemon.event('restore', 'j2')).toMatchObject({ ok: false });
    const report = parseDaemonReport(readFileSync(join(dir, 'restore_failed'), 'utf8'));
    expect(report).toMatchObject({ retryable: true, reason: expect.stringMatching(/^the checkpoint changed after this job rolled its files back/) });
    expect(existsSync(join(dir, 'checkpoint/pidfile'))).toBe(false);
  });

  it("holds a restored tree on its job's life (job-lease): killed once the job process named in the request is gone; a job already gone is refused", async () => {
    const { dir, served: daemon } = await checkpointedRun();

    // The job (ckpt-run) is a sleeper here; the restored program runs until its job is killed.
    const job = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const jobPid = job.pid as number;
    killAtCleanUp(jobPid);
    daemon.request({ kind: 'resume', jobId: 'j2', dir, jobPid });
    expect(await daemon.event('restore', 'j2')).toMatchObject({ ok: true });
    const restored = Number(readFileSync(join(dir, 'checkpoint/pidfile'), 'utf8'));
    killAtCleanUp(restored);
    expect(isGone(restored)).toBe(false);
    job.kill('SIGKILL');
    await waitUntil(() => isGone(restored), `the restored program ${restored} to be killed once its job ${jobPid} is gone`, 5_000);
    await daemon.logged(new RegExp(`warn: job j2: its process ${jobPid} ended while the program restored for it ran \\(PID ${restored}\\): killed the program's 2 process\\(es\\)`));

    // A resume asked by a job that has ended is not served: the program would run for nobody.
    rmSync(join(dir, 'checkpoint/pidfile')); // as a job does before it asks
    daemon.request({ kind: 'resume', jobId: 'j3', dir, jobPid });
    expect((await daemon.event('restore', 'j3')).reason).toBe(`the job process ${jobPid} that asked for the restore has ended: nothing to restore for`);
    expect(existsSync(join(dir, 'checkpoint/pidfile'))).toBe(false);
  });

  it('says in its heartbeat that it can leave the program running, and does when checkpoint_mode asks', async () => {
    const base = tempDir();
    const dir = runDir(base);
    daemon = await startTestDaemon(base, new RestartEngine());
    expect(heartbeatFeatures(readFileSync(join(daemon.spoolDir, HEARTBEAT_FILE), 'utf8'))).toEqual(['leave-running', 'job-lease']);
    const pid = await program(dir);
    writeFileSync(join(dir, 'checkpoint_mode'), 'leave-running\n');
    daemon.request({ kind: 'checkpoint', jobId: 'j1', pid, dir });
    expect(await daemon.event('dump', 'j1')).toMatchObject({ ok: true });
    expect(isGone(pid)).toBe(false);
    expect(parseCheckpointStats(readFileSync(join(dir, 'checkpoint_stats'), 'utf8'))).toEqual({ bytes: expect.any(Number), leftRunning: true });
    expect(daemon.lines.join('\n')).toMatch(/dump of PID \d+ into .* done in .*, left running\)/);
  });

  it('refuses hostile and malformed requests with a log line, and goes on serving', async () => {
    const base = tempDir();
    const dir = runDir(base);
    daemon = await startTestDaemon(base, new RestartEngine());
    const { spoolDir } = daemon;
    writeFileSync(join(base, 'elsewhere'), `${process.pid}\n${dir}\n`);
    symlinkSync(join(base, 'elsewhere'), join(spoolDir, 'link.checkpoint'));
    execFileSync('mkfifo', [join(spoolDir, 'fifo.checkpoint')]);
    writeFileSync(join(spoolDir, 'huge.resume'), `/${'x'.repeat(100_000)}\n`);
    writeFileSync(join(spoolDir, 'binary.resume'), '/tmp\0\n');
    writeFileSync(join(spoolDir, 'relative.resume'), 'tmp/run\n');
    for (const [name, why] of [
      ['link.checkpoint', 'the request is a symlink'],
      ['fifo.checkpoint', 'the request is a FIFO'],
      ['huge.resume', 'more than 8192'],
      ['binary.resume', 'binary content'],
      ['relative.resume', 'is not an absolute path'],
    ]) {
      await daemon.logged(new RegExp(`warn: refused ${name.replace('.', '\\.')}( from uid \\d+)?: .*${why}`));
    }

    daemon.request({ kind: 'checkpoint', jobId: 'init', pid: 1, dir });
    expect(await daemon.event('dump', 'init')).toMatchObject({ ok: false, reason: "PID 1 (the node's init) is never dumped" });
    expect(parseDaemonReport(readFileSync(join(dir, 'dump_failed'), 'utf8'))).toEqual({ reason: "PID 1 (the node's init) is never dumped", retryable: false, log: undefined });

    symlinkSync(dir, join(base, 'run-link'));
    daemon.request({ kind: 'resume', jobId: 'via-link', dir: join(base, 'run-link') });
    expect((await daemon.event('restore', 'via-link')).reason).toMatch(/reached through a symlink/);
    expect(existsSync(join(dir, 'restore_failed'))).toBe(false);

    const pid = await program(dir);
    daemon.request({ kind: 'checkpoint', jobId: 'good', pid, dir });
    expect(await daemon.event('dump', 'good')).toMatchObject({ ok: true });
    expect(readdirSync(join(spoolDir, '.ckpt-daemon'))).toEqual([]);
  });

  it('refuses to restore images holding a symlink (e.g. a "parent" to other images), and gives the folder back', async () => {
    const base = tempDir();
    const dir = runDir(base);
    mkdirSync(join(dir, 'checkpoint'), { mode: 0o750 });
    writeFileSync(join(dir, 'checkpoint', 'cmdline'), 'sleep\0' + '100\0');
    symlinkSync(tempDir(), join(dir, 'checkpoint', 'parent'));
    daemon = await startTestDaemon(base, new RestartEngine());
    daemon.request({ kind: 'resume', jobId: 'crafted', dir });
    expect((await daemon.event('restore', 'crafted')).reason).toMatch(/checkpoint\/parent is not a plain file/);
    expect(parseDaemonReport(readFileSync(join(dir, 'restore_failed'), 'utf8'))?.retryable).toBe(false);
    const images = statSync(join(dir, 'checkpoint'));
    expect([images.uid, images.mode & 0o7777]).toEqual([process.getuid?.(), 0o750]);
    expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
  });
});

/** An engine that follows a script: fails or succeeds when told, and records what overlaps. */
class ScriptedEngine implements CheckpointEngine {
  readonly name = 'scripted';
  running = 0;
  maxRunning = 0;
  private releases: Array<() => void> = [];

  constructor(private readonly failure?: EngineError) {}

  /** Lets every dump waiting so far finish. */
  release(): void {
    for (const release of this.releases.splice(0)) release();
  }

  async dump({ imagesDir }: { imagesDir: string }): Promise<DumpFigures> {
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    writeFileSync(join(imagesDir, 'pages-1.img'), 'x'.repeat(1000));
    await new Promise<void>((resolve) => this.releases.push(resolve));
    this.running -= 1;
    if (this.failure) throw this.failure;
    return {};
  }

  async restore(): Promise<never> {
    throw new EngineError("Can't fork for 4242: File exists", true, 'log');
  }
}

describe('ckpt-daemon around a failing or slow engine', () => {
  it('a failed dump leaves the previous checkpoint, checkpoint_ok and the program as they were', async () => {
    const base = tempDir();
    const dir = runDir(base);
    mkdirSync(join(dir, 'checkpoint'));
    writeFileSync(join(dir, 'checkpoint', 'core-1.img'), 'previous');
    signAsTheDaemon(join(dir, 'checkpoint'), process.getuid?.() ?? 0); // a checkpoint the daemon made: its restore reaches the engine
    writeFileSync(join(dir, 'checkpoint_ok'), '');
    const before = identity(join(dir, 'checkpoint_ok'));
    const engine = new ScriptedEngine(new EngineError('The root process 1 is not a session leader', false, 'Error (criu/pstree.c:300): ...'));
    daemon = await startTestDaemon(base, engine);
    const pid = await program(dir);
    daemon.request({ kind: 'checkpoint', jobId: 'j', pid, dir });
    await waitUntil(() => engine.running === 1, 'the dump to start');
    expect(readdirSync(dir).some((name) => name.startsWith('checkpoint.new-'))).toBe(true);
    engine.release();
    expect(await daemon.event('dump', 'j')).toMatchObject({ ok: false, reason: 'The root process 1 is not a session leader' });
    expect(parseDaemonReport(readFileSync(join(dir, 'dump_failed'), 'utf8'))).toEqual({
      reason: 'The root process 1 is not a session leader',
      retryable: false,
      log: 'Error (criu/pstree.c:300): ...',
    });
    expect(readdirSync(dir).sort()).toEqual(['checkpoint', 'checkpoint_ok', 'dump_failed', 'pids']);
    expect(readFileSync(join(dir, 'checkpoint', 'core-1.img'), 'utf8')).toBe('previous');
    expect(identity(join(dir, 'checkpoint_ok'))).toBe(before);
    expect(isGone(pid)).toBe(false);

    daemon.request({ kind: 'resume', jobId: 'r', dir });
    expect(await daemon.event('restore', 'r')).toMatchObject({ ok: false });
    expect(parseDaemonReport(readFileSync(join(dir, 'restore_failed'), 'utf8'))).toMatchObject({ retryable: true });
  });

  it('serves different jobs at the same time, and one job (or one folder) one request at a time', async () => {
    const base = tempDir();
    const [dirA, dirB] = [runDir(base, 'a'), runDir(base, 'b')];
    const engine = new ScriptedEngine();
    daemon = await startTestDaemon(base, engine);
    const [pidA, pidB] = [await program(dirA), await program(dirB)];
    daemon.request({ kind: 'checkpoint', jobId: 'a', pid: pidA, dir: dirA });
    daemon.request({ kind: 'checkpoint', jobId: 'b', pid: pidB, dir: dirB });
    await waitUntil(() => engine.running === 2, 'two dumps at once');
    daemon.request({ kind: 'checkpoint', jobId: 'a2', pid: pidA, dir: dirA });
    await waitUntil(() => !existsSync(join(daemon?.spoolDir as string, 'a2.checkpoint')), 'the daemon to take the request a2');
    engine.release();
    await daemon.event('dump', 'a');
    await waitUntil(() => engine.running === 1, 'the second dump of folder a');
    engine.release();
    expect((await daemon.event('dump', 'a2')).ok).toBe(true);
    expect(engine.maxRunning).toBe(2);
  });
});

describe('ckpt-daemon: room for the dump', () => {
  const MiB = 2 ** 20;
  /** A tree whose child holds MIB MiB of written memory. */
  const holding = (mib: number) =>
    startTree(['sh', '-c', `node -e "globalThis.b = Buffer.alloc(${mib} * 2 ** 20, 1); setInterval(() => {}, 1000)" & wait`]);

  it("counts the whole tree's written memory", async () => {
    const pid = await holding(48);
    await waitUntil(() => treeMemoryBytes(pid) >= 48 * MiB, () => `the tree to hold 48 MiB (it holds ${treeMemoryBytes(pid)} bytes)`);
  });

  it('counts the node-local files the tree holds (a /dev/shm file kept open): none over the bound, none of another owner', async () => {
    const file = `/dev/shm/ckpt-dump-room-${process.pid}`;
    writeFileSync(file, Buffer.alloc(3 * MiB, 1));
    const run = PinnedDir.open(tempDir());
    try {
      const pid = await startTree(['sh', '-c', `exec 3<${file}; exec sleep 100`]);
      await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n', 'sh to open the file and exec sleep');
      const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, gids: [], name: 'me' };
      expect(await nodeLocalBytes(pid, run, me, 1e9)).toBeGreaterThanOrEqual(3 * MiB);
      expect(await nodeLocalBytes(pid, run, me, MiB)).toBe(0); // all or nothing: over the bound, nothing travels
      expect(await nodeLocalBytes(pid, run, { ...me, uid: me.uid + 1 }, 1e9)).toBe(0);
    } finally {
      run.close();
      rmSync(file, { force: true });
    }
  });

  const mounts = realPartAvailable('the dump room refusal (mounts a small tmpfs)', () => (AS_ROOT ? undefined : 'needs root'));
  it.runIf(mounts)('a dump that cannot fit is refused before it starts, the program running on; with room it is served', async () => {
    const base = tempDir();
    const dir = runDir(base);
    mountTmpfs(dir, 16 * MiB);
    try {
      const engine = new ScriptedEngine();
      daemon = await startTestDaemon(base, engine);
      const pid = await holding(64);
      await waitUntil(() => treeMemoryBytes(pid) >= 64 * MiB, 'the tree to hold 64 MiB');
      daemon.request({ kind: 'checkpoint', jobId: 'j', pid, dir });
      const refused = await daemon.event('dump', 'j');
      const reason = /^not enough room for the dump in .*: it needs about [\d.]+ MB \(the program's [\d.]+ MB of memory and a margin\) and the filesystem has [\d.]+ MB free for /;
      expect(refused).toMatchObject({ ok: false, reason: expect.stringMatching(reason) });
      expect(refused.ms).toBeLessThan(2000);
      expect(parseDaemonReport(readFileSync(join(dir, 'dump_failed'), 'utf8'))?.reason).toBe(refused.reason);
      expect(engine.maxRunning).toBe(0);
      expect(readdirSync(dir)).toEqual(['dump_failed']);
      expect(isGone(pid)).toBe(false);

      resizeTmpfs(dir, 256 * MiB);
      daemon.request({ kind: 'checkpoint', jobId: 'j2', pid, dir });
      await waitUntil(() => engine.running === 1, 'the dump to start');
      engine.release();
      expect(await daemon.event('dump', 'j2')).toMatchObject({ ok: true });
    } finally {
      await daemon?.stop();
      daemon = undefined;
      unmount(dir);
    }
  });
});
