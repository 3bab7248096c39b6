/**
 * The fault matrix on REAL CRIU with the real bin/ckpt-daemon (root). Each case causes the
 * fault for real and prints one result line ("fault: …") for the README's reliability section:
 *   1. the last good checkpoint survives a failed next one, and is restored in a new job:
 *      a. CRIU refuses the dump (an open deleted file above CRIU's 1 MB ghost limit);
 *      b. the dump is cut off (ckpt-daemon and its criu SIGKILLed halfway through 1 GB); and
 *         b'. with the daemon back, the job's next signal checkpoints the program that survived;
 *      c. the disk has no room for the next dump (the run on a small tmpfs: the first checkpoint fits,
 *         not the second, which the daemon refuses before it starts);
 *   2. the dumped root's PID taken on the node when the job resumes:
 *      a. in its own PID namespace (--pid-namespace on, opt-in) the restore succeeds;
 *      b. without (--pid-namespace off): a retryable failure, exit 99 with the checkpoint intact,
 *         counted; once the PID is free the next job resumes and the run completes;
 *      c. a thread's ID taken instead: the daemon waits for it and restores in the same job;
 *   3. the resubmission cap (--max-restarts): exit 10, not 99, the checkpoint kept, and a job
 *      with a higher cap resumes it;
 *   4. SIGTERM to the job while CRIU dumps its program (the other signal cases need no CRIU:
 *      test/integration/faults.test.ts, with 6, the local-filesystem warning);
 *   5. output continuity over 10 consecutive checkpoint/restore cycles (100 SIGUSR2 per cycle);
 *   6. the job SIGKILLed alone while its restored program runs: the daemon kills the program.
 * A job killed "at walltime" is SIGKILLed together with its program's tree, as OAR does.
 * In CI this suite runs (a missing part fails it); elsewhere it is skipped loudly.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childrenOf, sleep } from '../../src/proc/processes.js';
import { imagesBytes } from '../../src/protocol/run-dir.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { faultProgram, GHOST_TRIGGER, numbers, range, STOP_TRIGGER } from '../helpers/fault-program.js';
import {
  checkpointIdentity, checkpointThreadIds, filesystemUsage, killAtWalltime, killProcessesUnder, mountTmpfs, occupyPid, resizeTmpfs, runState, spoolLeftovers, touch, unmount,
} from '../helpers/fault-system.js';
import { makeSandbox, Proc, ROOT, runCkpt, type RunAs, type Sandbox } from '../helpers/launcher-harness.js';
import { criuForUser, criuReady, realPartAvailable } from '../helpers/real-parts.js';
import { ensureTestUser, type TestUser } from '../helpers/test-user.js';
import { ensureBuilt } from '../helpers/build.js';

const EXIT = 7;
const MB = 1024 * 1024;
const results: string[] = [];
const report = (line: string): void => {
  results.push(line);
  console.log(line);
};

describe.runIf(realPartAvailable('the fault matrix on real CRIU', criuReady({ withPrlimitShim: true })))('faults on real CRIU with ckpt-daemon', () => {
  let base: Sandbox;
  let daemon: RealDaemon;
  let daemonLog: string;
  let user: TestUser;
  const mounts: string[] = [];
  const suiteStarted = Date.now();

  /**
   * The daemon on the suite's spool, with its image key next to the log (never the node's /etc):
   * a daemon started again after a kill finds the same key and restores the images it signed.
   */
  function startDaemon(): Promise<RealDaemon> {
    return RealDaemon.start({
      spool: base.spool,
      logPath: daemonLog,
      criu: criuForUser(),
      imageKey: join(dirname(daemonLog), 'image-key', 'image.key'),
    });
  }

  beforeAll(async () => {
    ensureBuilt();
    // An ordinary user's jobs through the root daemon, as on a cluster (a case about root says so).
    user = ensureTestUser();
    base = makeSandbox('ckpt-faults-e2e-');
    chmodSync(base.dir, 0o755);
    daemonLog = join(base.dir, 'daemon.log');
    daemon = await startDaemon();
  });

  afterAll(async () => {
    // What a failed case may have left running (jobs, programs) goes first: it keeps mounts busy.
    const leftovers = base ? await killProcessesUnder(base.dir) : 0;
    const alive = daemon !== undefined && daemon.proc.child.exitCode === null && daemon.proc.child.signalCode === null;
    const code = await daemon?.stop();
    for (const dir of mounts) unmount(dir);
    // The images take up to a few GB: nothing is kept once the suite has passed or failed.
    if (base) rmSync(base.dir, { recursive: true, force: true });
    if (results.length) console.log(`\nfault matrix (${Math.round((Date.now() - suiteStarted) / 1000)} s):\n${results.join('\n')}`);
    expect(leftovers).toBe(0);
    if (alive) expect(code).toBe(0);
  });

  type CaseSandbox = Sandbox & { run: string; as: RunAs };

  /**
   * A sandbox for one case: its own working directory (the user's, or root's for a case about
   * root), the suite's spool and daemon. A tmpfs mounted on it later is handed over by ownCase.
   */
  function caseDir(name: string, { asRoot = false } = {}): CaseSandbox {
    const workdir = join(base.dir, name);
    if (!existsSync(workdir)) mkdirSync(workdir);
    const sandbox = { ...base, workdir, run: join(workdir, '.ckpt-run', 'default'), as: asRoot ? {} : user };
    ownCase(sandbox);
    return sandbox;
  }

  /** The case's working directory is its job's user's (again after a mount over it). */
  function ownCase(sandbox: CaseSandbox): void {
    if (sandbox.as.uid !== undefined) chownSync(sandbox.workdir, sandbox.as.uid, sandbox.as.gid ?? sandbox.as.uid);
  }

  /** A job of the run, as a job script starts it: the same command line in every job. */
  const ckpt = (sandbox: CaseSandbox, jobId: string, argv: string[], options: string[] = []): Proc =>
    runCkpt(sandbox, ['--job-id', jobId, '--min-runtime', '0', ...options, '--', ...argv], {}, sandbox.as);

  /** A fresh job: runs until the program printed LINES lines, is checkpointed, exits 99. Returns the job and its last line K. */
  async function firstJob(sandbox: CaseSandbox, jobId: string, argv: string[], lines: number, extra: string[] = []): Promise<{ job: Proc; k: number }> {
    const job = ckpt(sandbox, jobId, argv, extra);
    await job.waitFor((p) => numbers(p.stdout).length >= lines, `${lines} lines in job ${jobId}`, 30_000);
    job.child.kill('SIGUSR2');
    await job.expectExit(99, 60_000);
    const printed = numbers(job.stdout);
    expect(printed).toEqual(range(1, printed.length));
    return { job, k: printed.length };
  }

  /** A job that resumes the run: returns it once the program is restored, with the restored root's PID. */
  async function resumedJob(sandbox: CaseSandbox, jobId: string, argv: string[], extra: string[] = []): Promise<{ job: Proc; root: number }> {
    const job = ckpt(sandbox, jobId, argv, extra);
    await job.waitFor((p) => /program restored as PID \d+/.test(p.stderr) || p.child.exitCode !== null, `the restore in job ${jobId}`, 60_000);
    const root = /program restored as PID (\d+)/.exec(job.stderr);
    if (!root) throw new Error(`job ${jobId} did not restore the program:\n${job.stderr}`);
    return { job, root: Number(root[1]) };
  }

  /**
   * The last job of a run: resumes it, lets the restored program print a few lines, stops it
   * (fault-stop) and checks its exit code. Returns what the restored program printed, read
   * from its log past the checkpoint's end, which is also all that the job printed: a killed
   * job's output after the checkpoint was rolled back into stdout.rolled-back.log, returned too.
   */
  async function finishRun(
    sandbox: CaseSandbox,
    jobId: string,
    argv: string[],
    whileRunning: (root: number) => void = () => undefined,
  ): Promise<{ restored: number[]; rolledBack: number[]; job: Proc }> {
    const log = join(sandbox.run, 'stdout.log');
    const from = runState(sandbox.run).checkpointOutput?.stdout ?? Number.NaN;
    const restoredOutput = (): string => readFileSync(log).subarray(from).toString();
    const { job, root } = await resumedJob(sandbox, jobId, argv);
    await waitUntil(() => numbers(restoredOutput()).length >= 5, () => `5 lines from the program restored in job ${jobId}\n${job.stderr}`, 30_000);
    whileRunning(root);
    touch(join(sandbox.workdir, STOP_TRIGGER));
    const code = await job.exitCode(60_000);
    rmSync(join(sandbox.workdir, STOP_TRIGGER));
    expect(job.stderr).toMatch(/ballast intact/);
    expect(code).toBe(EXIT);
    expect(runState(sandbox.run)).toMatchObject({ status: 'finished', exitCode: EXIT });
    const restored = numbers(restoredOutput());
    expect(numbers(job.stdout)).toEqual(restored);
    const rolledBackLog = join(sandbox.run, 'stdout.rolled-back.log');
    return { restored, rolledBack: existsSync(rolledBackLog) ? numbers(readFileSync(rolledBackLog, 'utf8')) : [], job };
  }

  const stillRunning = (job: Proc): boolean => job.child.exitCode === null && job.child.signalCode === null;

  /** Mid-dump: the daemon's new images folder exists and criu has written 100 MB of pages into it. Returns the folder. */
  async function dumpUnderWay(run: string): Promise<string> {
    let partial = '';
    await waitUntil(() => {
      const folder = readdirSync(run).find((name) => name.startsWith('checkpoint.new-'));
      if (!folder) return false;
      partial = join(run, folder);
      return readdirSync(partial).some((name) => name.startsWith('pages-') && statSync(join(partial, name)).size >= 100 * MB);
    }, 'the dump to be under way (100 MB of pages written)', 30_000);
    return partial;
  }

  /**
   * What a job killed after its resume of the checkpoint at line K printed is rolled back, all
   * of it (and what its program wrote before the kill and the job had not relayed yet).
   */
  function expectRolledBack(rolledBack: number[], k: number, killed: Proc): void {
    expect(rolledBack).toEqual(range(k + 1, k + rolledBack.length));
    expect(rolledBack.length).toBeGreaterThanOrEqual(numbers(killed.stdout).length);
    expect(killed.stdout.length).toBeGreaterThan(0);
  }

  it('1a. CRIU refuses the next dump (a deleted open file of 2 MB): the program runs on, no exit 99, the last checkpoint is kept and restored', async () => {
    const sandbox = caseDir('dump-refused');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 32, exitCode: EXIT });
    const { k } = await firstJob(sandbox, 'refused-1', argv, 10);
    const checkpoint = checkpointIdentity(sandbox.run);

    const { job, root } = await resumedJob(sandbox, 'refused-2', argv);
    await job.waitFor((p) => numbers(p.stdout).length >= 5, 'the restored program to run on', 30_000);
    touch(join(sandbox.workdir, GHOST_TRIGGER));
    await job.waitFor((p) => p.stderr.includes('ghost file open'), 'the program to open its ghost file');
    job.child.kill('SIGUSR2');
    await job.waitFor((p) => /checkpoint failed: .*The program keeps running/.test(p.stderr), "the daemon's refusal", 60_000);
    const reason = (/checkpoint failed: (.*)\. The program keeps running/.exec(job.stderr)?.[1] ?? '').replace(`${sandbox.workdir}/`, '');
    expect(reason).toBe("Can't dump ghost file fault-ghost.bin of 2097152 size, increase limit");
    // The program runs on: it still prints, and the job has not exited (with 99 or anything).
    const printed = numbers(job.stdout).length;
    await job.waitFor((p) => numbers(p.stdout).length >= printed + 5, 'the program to go on after the refused dump');
    expect(stillRunning(job)).toBe(true);
    expect(isGone(root)).toBe(false);
    expect(checkpointIdentity(sandbox.run)).toEqual(checkpoint);
    expect(existsSync(join(sandbox.run, 'dump_failed'))).toBe(true);
    expect(readdirSync(sandbox.run).filter((name) => name.startsWith('checkpoint.new-'))).toEqual([]);
    expect(runState(sandbox.run).restarts).toBe(1);

    rmSync(join(sandbox.workdir, GHOST_TRIGGER));
    await killAtWalltime(job, root);
    const { restored, rolledBack } = await finishRun(sandbox, 'refused-3', argv);
    expectRolledBack(rolledBack, k, job);
    expect(restored).toEqual(range(k + 1, k + restored.length));
    report(
      `fault: dump refused by CRIU ("${reason}") → program kept running, job not 99, checkpoint intact; ` +
        `next job restored it: lines 1..${k} then ${k + 1}..${k + restored.length} continuous, exit ${EXIT}; ` +
        `the killed job's ${rolledBack.length} lines past the checkpoint rolled back, not relayed again`,
    );
  }, 120_000);

  it('1b. the dump is cut off (ckpt-daemon and its criu SIGKILLed mid-dump of 1 GB): the program runs on, no exit 99, the last checkpoint is kept and restored', async () => {
    const sandbox = caseDir('dump-cut-off');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 50, megabytes: 1024, exitCode: EXIT });
    const { k } = await firstJob(sandbox, 'cut-1', argv, 3);
    const checkpoint = checkpointIdentity(sandbox.run);
    const firstDump = await daemon.logged(/job cut-1: dump of .* done in ([\d.]+) s \(([\d.]+) MB[,)]/, 'the first dump');

    const { job, root } = await resumedJob(sandbox, 'cut-2', argv, ['--daemon-grace', '1']);
    await job.waitFor((p) => numbers(p.stdout).length >= 3, 'the restored program to run on', 30_000);
    job.child.kill('SIGUSR2');
    const requested = Date.now();
    const partial = await dumpUnderWay(sandbox.run);
    const killedAt = Date.now() - requested;
    const pagesAtKill = imagesBytes(partial);
    const criu = await daemon.kill();
    expect(criu.length).toBeGreaterThan(0);

    // What CRIU leaves when it dies mid-dump (measured): its parasite finds its control socket
    // closed and returns the task to where it was; the ptrace tracer is gone, so the tree runs on.
    const printed = numbers(job.stdout).length;
    await job.waitFor((p) => numbers(p.stdout).length >= printed + 3, 'the program to run on after criu died', 20_000);
    expect(isGone(root)).toBe(false);
    expect(checkpointIdentity(sandbox.run)).toEqual(checkpoint);
    expect(runState(sandbox.run).restarts).toBe(1);
    // The job does not exit 99 (nor anything else): the daemon's heartbeat stopped, so it says
    // within seconds (not after the 300 s --dump-timeout) that no checkpoint came, and watches on.
    await job.waitFor((p) => /the checkpoint daemon stopped while serving .*cut-2\.checkpoint/.test(p.stderr), 'the job to notice the dead daemon', 20_000);
    expect(stillRunning(job)).toBe(true);
    expect(existsSync(join(sandbox.run, 'checkpoint_ok'))).toBe(true);

    daemon = await startDaemon();
    await killAtWalltime(job, root);
    const { restored, rolledBack } = await finishRun(sandbox, 'cut-3', argv);
    expectRolledBack(rolledBack, k, job);
    expect(restored).toEqual(range(k + 1, k + restored.length));
    // The cut-off dump's folder (root's, mode 0700: a user could not delete it) went with the next request.
    const partialName = partial.split('/').pop() as string;
    expect(daemon.log()).toContain(`job cut-3: removed ${sandbox.run}/${partialName}, left by a dump that never completed`);
    expect(readdirSync(sandbox.run).filter((name) => name.startsWith('checkpoint.new-'))).toEqual([]);
    report(
      `fault: dump cut off (daemon + criu SIGKILLed ${(killedAt / 1000).toFixed(1)} s into a dump of ${firstDump[2]} MB, ` +
        `${Math.round(pagesAtKill / MB)} MB written; a full dump takes ${firstDump[1]} s) → program kept running, job not 99, ` +
        `checkpoint intact; next job restored it (the partial dump removed): lines 1..${k} then ${k + 1}..${k + restored.length} ` +
        `continuous, exit ${EXIT}; the killed job's ${rolledBack.length} lines past the checkpoint rolled back, not relayed again`,
    );
  }, 180_000);

  it("1b'. after a cut-off dump, with ckpt-daemon back, the job's next checkpoint signal checkpoints the program that survived, and the next job resumes it", async () => {
    const sandbox = caseDir('dump-cut-off-recovery');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 50, megabytes: 512, exitCode: EXIT });
    const { k } = await firstJob(sandbox, 'recover-1', argv, 3);

    const { job, root } = await resumedJob(sandbox, 'recover-2', argv, ['--dump-timeout', '4']);
    await job.waitFor((p) => numbers(p.stdout).length >= 3, 'the restored program to run on', 30_000);
    job.child.kill('SIGUSR2');
    await dumpUnderWay(sandbox.run);
    await daemon.kill();
    daemon = await startDaemon();
    // Until --dump-timeout the job waits for the dump it asked for; then it takes the next signal.
    await job.waitFor((p) => /has not answered the dump request after 4 s .*: the program is running;/.test(p.stderr), 'the dump timeout', 20_000);
    const program = childrenOf(root)[0];
    const leftovers = program === undefined ? 0 : (readFileSync(`/proc/${program}/maps`, 'utf8').match(/CRIUMFD/g) ?? []).length;
    job.child.kill('SIGUSR2');
    await job.expectExit(99, 60_000);
    expect(job.stderr.match(/checkpoint requested for PID/g)).toHaveLength(2);
    const printed = numbers(job.stdout);
    expect(runState(sandbox.run).restarts).toBe(2);

    const last = ckpt(sandbox, 'recover-3', argv);
    await last.waitFor((p) => numbers(p.stdout).length >= 5, 'the program resumed from the new checkpoint', 60_000);
    touch(join(sandbox.workdir, STOP_TRIGGER));
    await last.expectExit(EXIT, 60_000);
    rmSync(join(sandbox.workdir, STOP_TRIGGER));
    expect(last.stderr).toMatch(/ballast intact/);
    const all = [...range(1, k), ...printed, ...numbers(last.stdout)];
    expect(all).toEqual(range(1, all.length));
    report(
      `fault: dump cut off, daemon restarted → after --dump-timeout the job took the next signal: the surviving program ` +
        `(${leftovers} CRIUMFD mappings left in it by the killed criu) dumped and resumed: lines 1..${all.length} each once over 3 jobs, exit ${EXIT}`,
    );
  }, 180_000);

  it('1c. no room on the disk for the next dump (tmpfs): refused before it starts, the program runs on, no exit 99, the last checkpoint is kept and restored', async () => {
    const sandbox = caseDir('disk-full');
    mountTmpfs(sandbox.workdir, 512 * MB);
    mounts.push(sandbox.workdir);
    ownCase(sandbox);
    try {
      const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 64, exitCode: EXIT });
      const { k } = await firstJob(sandbox, 'full-1', argv, 10);
      const checkpoint = checkpointIdentity(sandbox.run);
      // Room for the first checkpoint and half of a second one.
      const images = imagesBytes(join(sandbox.run, 'checkpoint'));
      const size = Math.ceil((filesystemUsage(sandbox.workdir).used + images / 2) / 4096) * 4096;
      resizeTmpfs(sandbox.workdir, size);

      const { job, root } = await resumedJob(sandbox, 'full-2', argv);
      await job.waitFor((p) => numbers(p.stdout).length >= 5, 'the restored program to run on', 30_000);
      const usedBefore = filesystemUsage(sandbox.workdir).used;
      job.child.kill('SIGUSR2');
      await job.waitFor((p) => /checkpoint failed: .*The program keeps running/.test(p.stderr) || !stillRunning(p), 'the failed dump', 60_000);
      const reason = /checkpoint failed: (.*)\. The program keeps running/.exec(job.stderr)?.[1] ?? '';
      expect(reason).toMatch(/^not enough room for the dump in .*: it needs about [\d.]+ MB \(the program's [\d.]+ MB of memory and a margin\) and the filesystem has [\d.]+ MB free for /);
      const printed = numbers(job.stdout).length;
      await job.waitFor((p) => numbers(p.stdout).length >= printed + 5, 'the program to go on after the failed dump');
      expect(stillRunning(job)).toBe(true);
      expect(isGone(root)).toBe(false);
      expect(checkpointIdentity(sandbox.run)).toEqual(checkpoint);
      expect(readdirSync(sandbox.run).filter((name) => name.startsWith('checkpoint.new-'))).toEqual([]);
      // Refused before anything was written: no partial images, no space taken.
      expect(filesystemUsage(sandbox.workdir).used - usedBefore).toBeLessThan(MB);
      expect(runState(sandbox.run).restarts).toBe(1);

      await killAtWalltime(job, root);
      const { restored, rolledBack } = await finishRun(sandbox, 'full-3', argv);
      expectRolledBack(rolledBack, k, job);
      expect(restored).toEqual(range(k + 1, k + restored.length));
      report(
        `fault: no room for the next dump (tmpfs of ${Math.round(size / MB)} MB, checkpoint ${Math.round(images / MB)} MB; "${reason}") → ` +
          `refused before it started, program kept running, job not 99, checkpoint intact, nothing written; next job restored it: ` +
          `lines 1..${k} then ${k + 1}..${k + restored.length} continuous, exit ${EXIT}; ` +
          `the killed job's ${rolledBack.length} lines past the checkpoint rolled back, not relayed again`,
      );
    } finally {
      await killProcessesUnder(sandbox.workdir);
      unmount(sandbox.workdir);
    }
  }, 120_000);

  it('2a. PID taken on restore, in its own PID namespace (--pid-namespace on): the restore succeeds anyway and the run completes', async () => {
    // --pid-namespace on is root's (a user's job gets no PID namespace).
    const sandbox = caseDir('pid-taken-ns', { asRoot: true });
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 16, exitCode: EXIT });
    const { job: job1, k } = await firstJob(sandbox, 'pidns-1', argv, 10, ['--pid-namespace', 'on']);
    const dumped = Number(/checkpoint requested for PID (\d+)/.exec(job1.stderr)?.[1]);
    const holder = await occupyPid(dumped);
    try {
      let namespacePids = '';
      const { restored, rolledBack, job } = await finishRun(sandbox, 'pidns-2', argv, (root) => {
        namespacePids = (/^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${root}/status`, 'utf8'))?.[1] ?? '').split(/\s+/).join(' ');
      });
      const restoredRoot = Number(/program restored as PID (\d+)/.exec(job.stderr)?.[1]);
      expect(restoredRoot).not.toBe(dumped);
      // The restored root is PID 1 of its own namespace (whose PID 1 and 2 are taken on the node, always).
      expect(namespacePids).toBe(`${restoredRoot} 1`);
      expect(restored).toEqual(range(k + 1, k + restored.length));
      expect(rolledBack).toEqual([]); // no job was killed
      expect(runState(sandbox.run).restarts).toBe(1);
      report(
        `fault: PID ${dumped} of the dumped root taken on restore (--pid-namespace on) → restored as PID ${restoredRoot} ` +
          `(NSpid ${namespacePids}: init of its own namespace), lines 1..${k + restored.length} continuous, exit ${EXIT}`,
      );
    } finally {
      await holder.release();
    }
  }, 120_000);

  it('2b. PID taken on restore, no PID namespace (--pid-namespace off): retryable failure, exit 99 with the checkpoint intact (counted); once the PID is free the next job completes the run', async () => {
    const sandbox = caseDir('pid-taken');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 16, exitCode: EXIT });
    const { job: job1, k } = await firstJob(sandbox, 'pid-1', argv, 10, ['--pid-namespace', 'off']);
    const dumped = Number(/checkpoint requested for PID (\d+)/.exec(job1.stderr)?.[1]);
    const checkpoint = checkpointIdentity(sandbox.run);

    // The jobs forked next must not take the tree's thread IDs, which follow its root's.
    const holder = await occupyPid(dumped, Math.max(...checkpointThreadIds(sandbox.run)));
    let job2: Proc;
    try {
      job2 = ckpt(sandbox, 'pid-2', argv);
      await job2.expectExit(99, 60_000);
    } finally {
      await holder.release();
    }
    const reason = /restore failed \((.*)\); the checkpoint is intact/.exec(job2.stderr)?.[1] ?? job2.stderr;
    expect(reason).toMatch(new RegExp(`Can't fork for ${dumped}: File exists`));
    const report2 = JSON.parse(readFileSync(join(sandbox.run, 'restore_failed'), 'utf8'));
    expect(report2.retryable).toBe(true);
    expect(checkpointIdentity(sandbox.run)).toEqual(checkpoint);
    expect(runState(sandbox.run)).toMatchObject({ status: 'checkpointed', restarts: 2 });

    const { restored, rolledBack, job } = await finishRun(sandbox, 'pid-3', argv);
    expect(rolledBack).toEqual([]); // the job whose restore failed ran nothing
    const restoredRoot = Number(/program restored as PID (\d+)/.exec(job.stderr)?.[1]);
    expect(restoredRoot).toBe(dumped);
    expect(restored).toEqual(range(k + 1, k + restored.length));
    const state = runState(sandbox.run);
    expect(state.restarts).toBe(2);
    expect(state.history.map((record) => record.outcome)).toEqual(['checkpointed', 'checkpointed', 'finished']);
    report(
      `fault: PID ${dumped} taken on restore (--pid-namespace off, held by a sleeper after ${holder.tries} fork(s)) → ` +
        `"${reason}", retryable, exit 99, checkpoint intact, restarts=2; PID freed → next job restored it as PID ${restoredRoot}: ` +
        `lines 1..${k + restored.length} continuous, exit ${EXIT}`,
    );
  }, 120_000);

  it("2c. a thread's ID taken on restore (--pid-namespace off, criu names no ID): the daemon waits for the images' thread IDs to be free, then restores in the same job", async () => {
    const sandbox = caseDir('tid-taken');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 16, exitCode: EXIT });
    const { job: job1, k } = await firstJob(sandbox, 'tid-1', argv, 10, ['--pid-namespace', 'off']);
    const dumped = Number(/checkpoint requested for PID (\d+)/.exec(job1.stderr)?.[1]);
    const threadIds = checkpointThreadIds(sandbox.run);
    const thread = Math.max(...threadIds.filter((tid) => tid !== dumped));
    const holdMs = 1500;
    const holder = await occupyPid(thread, Math.max(...threadIds));
    let releasedAt = Number.POSITIVE_INFINITY;
    const released = sleep(holdMs)
      .then(() => holder.release())
      .then(() => (releasedAt = Date.now()));
    const started = Date.now();
    try {
      const { restored, job } = await finishRun(sandbox, 'tid-2', argv);
      const restoredAfterMs = Date.now() - started;
      const restoredLine = /^ckpt-run: (\S+) .*program restored as PID (\d+)/m.exec(job.stderr);
      expect(Number(restoredLine?.[2])).toBe(dumped);
      // criu cannot restore while the thread ID is held: the restore came after the release.
      expect(Date.parse(restoredLine?.[1] ?? '')).toBeGreaterThanOrEqual(releasedAt - 50);
      expect(restored).toEqual(range(k + 1, k + restored.length));
      expect(runState(sandbox.run).restarts).toBe(1); // restored in the first job that tried
      report(
        `fault: thread ID ${thread} of the dumped tree (threads ${threadIds.join(' ')}) held ${holdMs} ms on restore (--pid-namespace off) → ` +
          `criu "Unable to create a thread: -17", the daemon waited for it and restored the same job (PID ${dumped}, ` +
          `whole job ${(restoredAfterMs / 1000).toFixed(1)} s): lines 1..${k + restored.length} continuous, exit ${EXIT}`,
      );
    } finally {
      await released;
    }
  }, 120_000);

  it('3. resubmission cap: past --max-restarts a clear error and exit 10, not 99, the checkpoint kept; a job with a higher cap resumes it', async () => {
    const sandbox = caseDir('max-restarts');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 16, exitCode: EXIT });
    const { k: k1 } = await firstJob(sandbox, 'cap-1', argv, 10, ['--max-restarts', '1']);

    const job2 = ckpt(sandbox, 'cap-2', argv, ['--max-restarts', '1']);
    await job2.waitFor((p) => numbers(p.stdout).length >= 10, 'the restored program to run on', 30_000);
    job2.child.kill('SIGUSR2');
    await job2.expectExit(10, 60_000);
    const message = /error: (.*--max-restarts.*)/.exec(job2.stderr)?.[1] ?? '';
    expect(message).toMatch(/already resubmitted 1 time \(--max-restarts 1\): not exiting 99\. The checkpoint is kept/);
    const printed2 = numbers(job2.stdout);
    expect(printed2).toEqual(range(k1 + 1, k1 + printed2.length));
    expect(existsSync(join(sandbox.run, 'checkpoint_ok'))).toBe(true);
    expect(runState(sandbox.run).restarts).toBe(1);

    const job3 = ckpt(sandbox, 'cap-3', argv, ['--max-restarts', '5']);
    await job3.waitFor((p) => numbers(p.stdout).length >= 5, 'the run resumed with a higher cap', 60_000);
    touch(join(sandbox.workdir, STOP_TRIGGER));
    await job3.expectExit(EXIT, 60_000);
    rmSync(join(sandbox.workdir, STOP_TRIGGER));
    const all = [job2, job3].reduce((lines, job) => [...lines, ...numbers(job.stdout)], range(1, k1));
    expect(all).toEqual(range(1, all.length));
    report(
      `fault: --max-restarts 1 reached → exit 10 ("${message.split('. ')[0]}"), checkpoint kept; ` +
        `job with --max-restarts 5 resumed it: lines 1..${all.length} each once, exit ${EXIT}`,
    );
  }, 120_000);

  it('4. SIGTERM to the job while CRIU dumps its program (1 GB): the dump completes, exit 99 with the checkpoint, and the next job resumes a program that runs on', async () => {
    const sandbox = caseDir('sigterm-mid-dump');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 50, megabytes: 1024, exitCode: EXIT });
    const job = ckpt(sandbox, 'term-1', argv);
    await job.waitFor((p) => numbers(p.stdout).length >= 3, '3 lines', 30_000);
    job.child.kill('SIGUSR2');
    await dumpUnderWay(sandbox.run);
    job.child.kill('SIGTERM');
    await job.expectExit(99, 120_000);
    expect(job.stderr).toMatch(/SIGTERM received: passing it to the program/);
    expect(job.stderr).toMatch(/checkpoint complete in [\d.]+ m?s( \([^)]*\))?, program stopped; exit 99/);
    const k = numbers(job.stdout).length;
    expect(numbers(job.stdout)).toEqual(range(1, k));

    // criu saved the tree's pending signals before its memory: a SIGTERM that came after (while
    // the pages were written) is in no image, and the frozen program never saw it (measured).
    const { restored, rolledBack } = await finishRun(sandbox, 'term-2', argv);
    expect(restored).toEqual(range(k + 1, k + restored.length));
    expect(rolledBack).toEqual([]);
    report(
      `fault: SIGTERM to the job during a real dump of 1 GB → passed to the frozen program, the dump completed, exit 99; ` +
        `next job restored it, the program ran on (the signal not delivered again): lines 1..${k + restored.length} continuous, exit ${EXIT}`,
    );
  }, 180_000);

  it("6. the job SIGKILLed alone while its restored program runs (what Slurm's process tracking leaves of a daemon's child): the daemon kills the program (job-lease) and the next job resumes the checkpoint", async () => {
    const sandbox = caseDir('lease');
    const argv = faultProgram(sandbox.workdir, { count: 100_000, tickMs: 20, megabytes: 16, exitCode: EXIT });
    const { k } = await firstJob(sandbox, 'lease-1', argv, 10);
    const { job: job2, root } = await resumedJob(sandbox, 'lease-2', argv);
    job2.child.kill('SIGKILL');
    await job2.exited;
    const killedAt = Date.now();
    await waitUntil(() => isGone(root), `the restored program ${root} to be killed once its job is gone`, 10_000);
    const goneAfterMs = Date.now() - killedAt;
    // The daemon kills, then says so: its line may come a moment after the program is gone.
    await daemon.logged(new RegExp(`job lease-2: its process ${job2.child.pid} ended while the program restored for it ran \\(PID ${root}\\)`), 'the daemon to say it killed the program of a job gone', 10_000);

    const { restored } = await finishRun(sandbox, 'lease-3', argv);
    expect(restored).toEqual(range(k + 1, k + restored.length));
    report(
      `fault: job SIGKILLed alone while its restored program ran → the daemon killed the program ${goneAfterMs} ms later (its lease on the job); ` +
        `the next job resumed the checkpoint: lines 1..${k + restored.length} continuous, exit ${EXIT}`,
    );
  }, 120_000);

  it('5. output continuity over 10 consecutive checkpoint/restore cycles (100 SIGUSR2 each): every line once, in order, memory intact, the exit code', async () => {
    const sandbox = caseDir('continuity');
    const cycles = 10;
    const count = 400;
    const counter = join(ROOT, 'examples/stateful-counter.mjs');
    const argv = [process.execPath, counter, String(count), '20', '16', String(EXIT)];
    const jobs: Proc[] = [];
    for (let cycle = 1; cycle <= cycles; cycle++) {
      const job = ckpt(sandbox, `cont-${cycle}`, argv);
      jobs.push(job);
      await job.waitFor((p) => p.stdout.split('\n').length > 8, `8 lines in job ${cycle}`, 30_000);
      for (let signal = 0; signal < 100; signal++) job.child.kill('SIGUSR2');
      await job.expectExit(99, 60_000);
      expect(job.stderr.match(/checkpoint requested for PID/g)).toHaveLength(1);
    }
    const last = ckpt(sandbox, `cont-${cycles + 1}`, argv);
    jobs.push(last);
    const exitCode = await last.exitCode(120_000);

    const lines = jobs.map((job) => job.stdout).join('').trim().split('\n').map((line) => line.split(' ').map(Number));
    const printed = lines.map(([i]) => i);
    const duplicates = printed.length - new Set(printed).size;
    const gaps = range(1, count).filter((i) => !printed.includes(i)).length;
    let initial = 0;
    for (let j = 0; j < (16 * MB) / 4; j++) initial = (initial + (Math.imul(j, 2654435761) >>> 0)) >>> 0;
    const badChecksums = lines.filter(([i, sum]) => sum !== (initial + (i * (i + 1)) / 2) % 2 ** 32).length;
    const dumps = (daemon.log().match(/job cont-\d+: dump of .* done in/g) ?? []).length;
    const restores = (daemon.log().match(/job cont-\d+: restore of .* done in/g) ?? []).length;
    const state = runState(sandbox.run);
    report(
      `fault: ${cycles} consecutive checkpoint/restore cycles (jobs cont-1..cont-${cycles + 1}, 100 SIGUSR2 each) → ` +
        `cycles=${cycles} dumps=${dumps} restores=${restores} lines=${printed.length} duplicates=${duplicates} gaps=${gaps} ` +
        `bad checksums=${badChecksums} restarts=${state.restarts} exit code=${exitCode}`,
    );
    expect(printed).toEqual(range(1, count));
    expect([duplicates, gaps, badChecksums]).toEqual([0, 0, 0]);
    expect(exitCode).toBe(EXIT);
    expect([dumps, restores, state.restarts]).toEqual([cycles, cycles, cycles]);
    expect(jobs.slice(1).every((job) => /program restored as PID/.test(job.stderr))).toBe(true);
    expect(spoolLeftovers(base.spool)).toEqual([]);
  }, 180_000);

});
