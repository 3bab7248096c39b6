/**
 * ckpt-run on a REAL OAR 2.5.9 cluster (scripts/oar-local.sh, one node, one resource per core)
 * with ckpt-daemon on real CRIU, as users run it: jobs submitted with oarsub by a non-root user,
 * examples/oar-job.sh (`exec ckpt-run -- "$@"`) as the job's command, OAR's own checkpoint
 * signal, exit 99, OAR's own resubmission, and ckpt-daemon restoring the program into the new
 * job's cgroups.
 *   a. automatic: `oarsub -t idempotent --checkpoint N -l walltime=W` of a counter that needs
 *      two jobs; OAR signals at W-N, resubmits, the new job resumes and finishes;
 *   b. manual: `oardel --checkpoint ID`, then the same chain;
 *   c. the restored programs of a and b run in the new job's cgroups (cpuset and the others);
 *   d. a job whose program finishes on its own is not resubmitted, and later jobs in the same
 *      directory, with the same run key, start fresh (also over a finished run's checkpoint).
 * a and b run side by side (two cores), d starts when b has freed its core. About 3.5 minutes.
 * Root only; in CI it always runs (OAR and CRIU are installed if missing), elsewhere it is
 * skipped loudly without root.
 */
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeOf } from '../../src/proc/processes.js';
import { readOr } from '../helpers/launcher-harness.js';
import { deleteActiveJobs, ensureOarUser, exitStatusOf, followChain, formatChain, oarJob, oarProbe, oardelCheckpoint, oarsub, startCluster, stopCluster, type ClusterHandle, type OarJob, type OarUser } from '../helpers/oar-cluster.js';
import { pollFor } from '../helpers/poll.js';
import { prepareSchedulerNode, type SchedulerNode } from '../helpers/oar-node.js';
import type { RealDaemon } from '../helpers/real-daemon.js';
import { realPartAvailable } from '../helpers/real-parts.js';

const USER = 'ckptoar';
const CONTROLLERS = ['cpuset', 'cpu', 'cpuacct', 'devices', 'freezer']; // what OAR's cgroup job manager uses

/** a: the counter needs ~130 s; each job gets ~75-85 s before OAR's signal (walltime 120 s - 45 s, + 0-10 s). */
const A = { walltime: 120, checkpoint: 45, count: 130, tick: 1, code: 42 };
/** b: no --checkpoint: only the user's oardel --checkpoint signals it. */
const B = { walltime: 300, count: 40, tick: 1, code: 43, linesBeforeCheckpoint: 5 };
/** d: the program ends on its own after > 60 s (so OAR would resubmit it, had it exited 99), long before W-N. */
const D = { walltime: 180, checkpoint: 30, count: 65, tick: 1, code: 0 };
const LATER = { count: 5, tick: 0.2, code: 0 };

const walltime = (seconds: number): string => `walltime=${Math.floor(seconds / 3600)}:${Math.floor((seconds % 3600) / 60)}:${seconds % 60}`;
const numbers = (count: number): string => Array.from({ length: count }, (_, k) => `${k + 1}\n`).join('');

/** What the test saw of a restored program in the new job (test c). */
interface RestoreCheck {
  chain: string;
  jobId: number;
  dumpedJobId: number;
  pid: number;
  /** /proc/PID/cgroup of every process of the restored tree. */
  membership: Map<number, string>;
  /** The new job's cpuset.cpus, and what the kernel lets the restored root run on. */
  jobCpus: string;
  allowedCpus: string;
  /** The dumped job's cgroups still present after the restore (criu recreates them). */
  leftovers: string[];
}

interface ChainResult {
  name: string;
  dir: string;
  jobs: OarJob[];
  stdout: string[];
  stderr: string[];
  seconds: number;
}

/**
 * Who asked OAR to checkpoint JOB, from its CHECKPOINT events: "User <name> requested a
 * checkpoint on the job N" for `oardel --checkpoint`, "User oar (sarko) requested …" for OAR's
 * own signal at walltime - N.
 */
const checkpointRequests = (job: OarJob): string[] => job.events.filter((event) => event.type === 'CHECKPOINT').map((event) => event.description);

/** A ckpt-run log line's timestamp (ms), e.g. "ckpt-run: 2026-11-24T18:41:02.891Z checkpoint signal received". */
function loggedAt(stderr: string, what: RegExp): number | undefined {
  const line = stderr.split('\n').find((candidate) => what.test(candidate));
  const stamp = line?.match(/^ckpt-run: (\S+) /)?.[1];
  return stamp ? Date.parse(stamp) : undefined;
}

describe.runIf(realPartAvailable('ckpt-run on a real OAR cluster', oarProbe))('ckpt-run under a real OAR 2.5.9 (oar-local.sh) with ckpt-daemon on real CRIU', () => {
  let cluster: ClusterHandle | undefined;
  let user: OarUser;
  let node: SchedulerNode | undefined;
  let daemon: RealDaemon | undefined;
  let pkg: string;
  let base: string;
  const restores: RestoreCheck[] = [];
  let chainA: Promise<ChainResult>;
  let chainB: Promise<ChainResult>;
  let chainD: Promise<{ finished: ChainResult; later: ChainResult; overCheckpoint: ChainResult | Error; runIds: string[] }>;

  const jobDir = (name: string): string => {
    const dir = join(base, name);
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, user.uid, user.gid);
    return dir;
  };
  const fileOf = (dir: string, job: OarJob, which: 'stdout' | 'stderr'): string =>
    readOr(join(dir, which === 'stdout' ? job.stdoutFile : job.stderrFile), `(no ${which} file)`);
  const daemonLines = (jobId: number): string[] =>
    (daemon?.log() ?? '').split('\n').filter((line) => line.includes(`job ${jobId}: `)).map((line) => line.replace(/^ckpt-daemon: \S+ /, ''));

  /** Test c's observation, made while the restored program runs in job JOB (index > 0 of a chain). */
  async function checkRestored(chain: string, dir: string, job: OarJob, dumpedJobId: number): Promise<void> {
    const stderrPath = join(dir, job.stderrFile);
    const pid = await pollFor(
      () => readOr(stderrPath).match(/program restored as PID (\d+)/)?.[1],
      `"program restored as PID" in ${stderrPath}`,
      60_000,
      200,
    ).then(Number);
    const membership = new Map<number, string>();
    for (const member of treeOf(pid)) {
      const text = readOr(`/proc/${member}/cgroup`);
      if (text) membership.set(member, text.trim());
    }
    restores.push({
      chain,
      jobId: job.id,
      dumpedJobId,
      pid,
      membership,
      jobCpus: readOr(`/sys/fs/cgroup/cpuset/oar/${user.name}_${job.id}/cpuset.cpus`, '(no cpuset)').trim(),
      allowedCpus: readOr(`/proc/${pid}/status`).match(/^Cpus_allowed_list:\s*(\S+)$/m)?.[1] ?? '(gone)',
      leftovers: CONTROLLERS.map((c) => `/sys/fs/cgroup/${c}/oar/${user.name}_${dumpedJobId}`).filter((path) => existsSync(path)),
    });
  }

  /** Submits ARGS from DIR and follows the job through OAR's resubmissions; collects each job's output. */
  async function runChain(
    name: string,
    dir: string,
    args: string[],
    options: { timeoutMs: number; onFirstRunning?: (job: OarJob) => Promise<void> },
  ): Promise<ChainResult> {
    const started = Date.now();
    const firstId = oarsub(user, dir, args);
    console.log(`[${name}] submitted job ${firstId}: oarsub ${args.join(' ')}`);
    const submitted = await oarJob(firstId);
    if (submitted.launchingDirectory !== dir) throw new Error(`job ${firstId} would run in ${submitted.launchingDirectory}, not in ${dir}`);
    let previous = firstId;
    const jobs = await followChain(firstId, {
      timeoutMs: options.timeoutMs,
      onRunning: async (job, index) => {
        console.log(`[${name}] job ${job.id} Running (${Math.round((Date.now() - started) / 1000)} s after oarsub)`);
        if (index === 0) await options.onFirstRunning?.(job);
        else await checkRestored(name, dir, job, previous);
      },
      onEnded: (job) => {
        previous = job.id;
        console.log(`[${name}] ${formatChain([job])} (${Math.round((Date.now() - started) / 1000)} s after oarsub)`);
      },
    });
    const result: ChainResult = {
      name,
      dir,
      jobs,
      stdout: jobs.map((job) => fileOf(dir, job, 'stdout')),
      stderr: jobs.map((job) => fileOf(dir, job, 'stderr')),
      seconds: Math.round((Date.now() - started) / 1000),
    };
    report(result);
    return result;
  }

  /** Prints the job chain: ids, states, exit codes, each job's ckpt-run log and the daemon's lines. */
  function report(result: ChainResult): void {
    const lines = [`[${result.name}] chain (${result.seconds} s): ${formatChain(result.jobs)}`];
    result.jobs.forEach((job, index) => {
      lines.push(`  job ${job.id} events:`);
      for (const event of job.events) lines.push(`    event | ${event.type}: ${event.description}`);
      for (const line of result.stderr[index].trim().split('\n')) lines.push(`    stderr| ${line}`);
      for (const line of daemonLines(job.id)) lines.push(`    daemon| ${line}`);
    });
    console.log(lines.join('\n'));
  }

  /** Each line of the program exactly once across the chain's stdout files, in order. */
  function outputCheck(result: ChainResult, count: number): string {
    const all = result.stdout.join('').split('\n').filter(Boolean).map(Number);
    const duplicates = all.length - new Set(all).size;
    const missing = Array.from({ length: count }, (_, k) => k + 1).filter((n) => !all.includes(n)).length;
    const perJob = result.stdout.map((text) => {
      const got = text.split('\n').filter(Boolean);
      return got.length ? `${got[0]}..${got[got.length - 1]} (${got.length})` : '(empty)';
    });
    const verdict = result.stdout.join('') === numbers(count) ? 'OK' : 'MISMATCH';
    const text = `[${result.name}] output check: lines per job ${perJob.join(' + ')} = ${all.length} lines, expected 1..${count} each once: duplicates=${duplicates} missing=${missing} -> ${verdict}`;
    console.log(text);
    return verdict;
  }

  /**
   * A run checkpointed once: the first job exited 99 and OAR resubmitted it; the second
   * resumed it and ended with the program's CODE; every line once across the two.
   */
  function expectResubmittedOnce(chain: ChainResult, expected: { count: number; code: number }): void {
    const [first, last] = chain.jobs;
    expect(outputCheck(chain, expected.count)).toBe('OK');
    expect(chain.jobs).toHaveLength(2);
    expect(chain.jobs.map((job) => job.state)).toEqual(['Terminated', 'Terminated']);
    expect(exitStatusOf(first)).toEqual({ code: 99, signal: 0 });
    expect(exitStatusOf(last)).toEqual({ code: expected.code, signal: 0 });
    expect(last.resubmitJobId).toBe(first.id);
    expect(first.events.map((event) => event.type)).toContain('RESUBMIT_JOB_AUTOMATICALLY');
  }

  beforeAll(async () => {
    cluster = startCluster();
    user = ensureOarUser(USER);
    node = await prepareSchedulerNode(user, 'oar-e2e');
    ({ pkg, base, daemon } = node);

    const ojob = join(pkg, 'examples/oar-job.sh');
    const counter = join(pkg, 'examples/counter.sh');
    const dirA = jobDir('a');
    chainA = runChain(
      'a',
      dirA,
      ['-t', 'idempotent', '--checkpoint', String(A.checkpoint), '-l', walltime(A.walltime), '-n', 'e2e-a', `${ojob} ${counter} ${A.count} ${A.tick} ${A.code}`],
      { timeoutMs: 330_000 },
    );
    const dirB = jobDir('b');
    chainB = runChain('b', dirB, ['-t', 'idempotent', '-l', walltime(B.walltime), '-n', 'e2e-b', `${ojob} ${counter} ${B.count} ${B.tick} ${B.code}`], {
      timeoutMs: 300_000,
      onFirstRunning: async (job) => {
        const stdout = join(dirB, job.stdoutFile);
        await pollFor(
          () => (readOr(stdout).split('\n').filter(Boolean).length >= B.linesBeforeCheckpoint ? true : undefined),
          `${B.linesBeforeCheckpoint} lines in ${stdout}`,
          60_000,
          200,
        );
        console.log(`[b] oardel --checkpoint ${job.id}: ${oardelCheckpoint(user, job.id).replace(/\n/g, ' ')}`);
      },
    });
    // d takes the core b frees (submitted earlier, it would take the core a resubmitted job needs).
    chainD = (async () => {
      await chainB.catch(() => undefined);
      const dirD = jobDir('d');
      const finished = await runChain(
        'd',
        dirD,
        ['-t', 'idempotent', '--checkpoint', String(D.checkpoint), '-l', walltime(D.walltime), '-n', 'e2e-d', `${ojob} ${counter} ${D.count} ${D.tick} ${D.code}`],
        { timeoutMs: 240_000 },
      );
      const later = (dir: string, runId: string, name: string): Promise<ChainResult> =>
        runChain(name, dir, ['-t', 'idempotent', '-l', walltime(120), '-n', `e2e-${name}`, `ckpt-run --run-id ${runId} -- ${counter} ${LATER.count} ${LATER.tick} ${LATER.code}`], {
          timeoutMs: 120_000,
        });
      const runIdD = `oar-${finished.jobs[0].arrayId}-1`;
      // The second later job goes over test a's finished run, which still has its checkpoint.
      const overA = chainA.then(
        (a) => ({ dir: a.dir, runId: `oar-${a.jobs[0].arrayId}-1` }),
        (error: Error) => new Error(`needs test a's finished run, but chain a failed: ${error.message}`),
      );
      const laterA = overA.then<ChainResult | Error>((t) => (t instanceof Error ? t : later(t.dir, t.runId, 'd-later-over-a')));
      const [laterD, overCheckpoint, target] = await Promise.all([later(dirD, runIdD, 'd-later'), laterA, overA]);
      return { finished, later: laterD, overCheckpoint, runIds: [runIdD, target instanceof Error ? '' : target.runId] };
    })();
    // Each test awaits its own chain; none may become an unhandled rejection meanwhile.
    for (const chain of [chainA, chainB, chainD]) chain.catch(() => undefined);
  }, 900_000);

  afterAll(async () => {
    if (user) await deleteActiveJobs(user).catch((error) => console.warn(`oar e2e: ${error}`));
    await node?.tearDown();
    if (cluster && !cluster.wasUp) stopCluster();
  }, 240_000);

  it("a. automatic: OAR's own signal at walltime-N, dump, exit 99, OAR resubmits, the new job resumes; every line once, the program's exit code", async () => {
    const a = await chainA;
    const [first, last] = a.jobs;
    const signalAt = loggedAt(a.stderr[0], /checkpoint signal received/);
    const signalOffset = signalAt === undefined ? undefined : signalAt / 1000 - first.startTime;
    console.log(
      `[a] OAR's checkpoint signal ${signalOffset?.toFixed(1)} s after job ${first.id} started (walltime ${A.walltime} s - checkpoint ${A.checkpoint} s = ${A.walltime - A.checkpoint} s)`,
    );
    expectResubmittedOnce(a, A);
    // OAR's own signal: its walltime watcher (sarko) asked for it, at walltime - N or later; not the user.
    expect(checkpointRequests(first)).toEqual([expect.stringMatching(/^User oar \(sarko\) requested a checkpoint on the job \d+/)]);
    expect(signalOffset).toBeGreaterThanOrEqual(A.walltime - A.checkpoint - 1);
    // ckpt-run read the walltime from OAR (OAR_JOB_WALLTIME_SECONDS and the job shell's start):
    // what it says is left at the signal is what OAR's own clock says, but for OAR's launch time
    // (1.2-1.4 s here) and whole-second clocks. A misread walltime would be off by far more.
    const left = Number(/checkpoint signal received \(the walltime ends in ([\d.]+) s\)/.exec(a.stderr[0])?.[1]);
    console.log(`[a] ckpt-run at the signal: the walltime ends in ${left} s (by OAR's start time: ${(A.walltime - (signalOffset ?? 0)).toFixed(1)} s); ${/checkpoint complete in [\d.]+ m?s/.exec(a.stderr[0])?.[0]}`);
    expect(Math.abs(left - (A.walltime - (signalOffset as number)))).toBeLessThan(5);
    expect(a.stderr[0]).toMatch(/checkpoint complete in [\d.]+ m?s( \([^)]*\))?, program stopped; exit 99/);
    // examples/oar-job.sh exec'd ckpt-run: no shell in between to die of the signal.
    expect(a.stderr[0]).not.toMatch(/parent is a shell/);
    expect(a.stderr[1]).toMatch(/program restored as PID \d+/);
    expect(a.stderr[1]).toMatch(new RegExp(`program exited with code ${A.code}`));
    expect(daemonLines(first.id).join('\n')).toMatch(/dump of PID \d+ into .* done in/);
    expect(daemonLines(last.id).join('\n')).toMatch(/restore of .* done in/);
  }, 420_000);

  it('b. manual: oardel --checkpoint on a running job, exit 99 after 60 s of job time, resubmitted, resumed; every line once, the exit code', async () => {
    const b = await chainB;
    const [first] = b.jobs;
    expectResubmittedOnce(b, B);
    expect(checkpointRequests(first)).toEqual([`User ${user.name} requested a checkpoint on the job ${first.id}`]);
    // The signal came early in the job: ckpt-run held exit 99 until OAR's 60 s rule was met.
    expect(first.stopTime - first.startTime).toBeGreaterThan(60);
    expect(b.stderr[0]).toMatch(/before exit 99: the scheduler resubmits only jobs that ran more than 60 s/);
    expect(b.stderr[1]).toMatch(/program restored as PID \d+/);
  }, 420_000);

  it("c. the restored program runs inside the new job's cgroups (cpuset /oar/<user>_<new job id>), none left of the dumped job's", async () => {
    await Promise.allSettled([chainA, chainB]);
    expect(restores.map((r) => r.chain).sort()).toEqual(['a', 'b']);
    for (const r of restores) {
      console.log(
        `[c] chain ${r.chain}: restored PID ${r.pid} in job ${r.jobId} (dumped in job ${r.dumpedJobId}); tree ${[...r.membership.keys()].join(' ')}; ` +
          `job cpuset.cpus=${r.jobCpus}, root's Cpus_allowed_list=${r.allowedCpus}; dumped job's cgroups left: ${r.leftovers.length ? r.leftovers.join(' ') : 'none'}\n` +
          `    /proc/${r.pid}/cgroup: ${(r.membership.get(r.pid) ?? '(gone)').split('\n').join(' | ')}`,
      );
      expect(r.membership.has(r.pid)).toBe(true);
      for (const [member, text] of r.membership) {
        for (const controller of CONTROLLERS) {
          expect(text, `PID ${member} of the tree restored in job ${r.jobId}, ${controller}`).toMatch(
            new RegExp(`^\\d+:([^:]*,)?${controller}(,[^:]*)?:/oar/${user.name}_${r.jobId}$`, 'm'),
          );
        }
      }
      expect(r.allowedCpus).toBe(r.jobCpus);
      expect(r.leftovers).toEqual([]);
    }
  }, 420_000);

  it('d. a program that finishes on its own: no resubmission, its exit code; later jobs in the same folder with the same run key start fresh', async () => {
    const { finished, later, overCheckpoint, runIds } = await chainD;
    if (overCheckpoint instanceof Error) throw overCheckpoint;
    const [job] = finished.jobs;
    expect(outputCheck(finished, D.count)).toBe('OK');
    // Not resubmitted, although it was idempotent and ran more than 60 s (OAR's conditions but exit 99).
    expect(finished.jobs).toHaveLength(1);
    expect(job.state).toBe('Terminated');
    expect(exitStatusOf(job)).toEqual({ code: D.code, signal: 0 });
    expect(job.events.map((event) => event.type)).not.toContain('RESUBMIT_JOB_AUTOMATICALLY');
    expect(job.stopTime - job.startTime).toBeGreaterThan(60);
    // It ended with its program, long before OAR's signal (walltime - N) and the walltime.
    expect(job.stopTime - job.startTime).toBeLessThan(D.walltime - D.checkpoint);
    expect(finished.stderr[0]).not.toMatch(/checkpoint signal received/);
    expect(finished.stderr[0]).toMatch(new RegExp(`program exited with code ${D.code}`));

    // Later jobs: same folder, same run key (--run-id) as a finished run: a fresh start, never a resume.
    for (const [result, previousCode, runId] of [
      [later, D.code, runIds[0]],
      [overCheckpoint, A.code, runIds[1]],
    ] as const) {
      expect(outputCheck(result, LATER.count)).toBe('OK');
      expect(result.jobs).toHaveLength(1);
      expect(exitStatusOf(result.jobs[0])).toEqual({ code: LATER.code, signal: 0 });
      expect(result.stderr[0]).toContain(`the previous run in ${join(result.dir, '.ckpt-run', runId)} finished (exit code ${previousCode}): starting a new run`);
      expect(result.stderr[0]).not.toMatch(/resuming the checkpoint|program restored/);
      expect(daemonLines(result.jobs[0].id)).toEqual([]);
    }
    // The second one met a finished run that still had its checkpoint (test a's): not resumed, and replaced.
    const state = JSON.parse(readFileSync(join(overCheckpoint.dir, '.ckpt-run', runIds[1], 'state.json'), 'utf8'));
    expect(state.history.map((entry: { jobId: string; mode: string }) => [entry.jobId, entry.mode])).toEqual([[String(overCheckpoint.jobs[0].id), 'fresh']]);
    expect(existsSync(join(overCheckpoint.dir, '.ckpt-run', runIds[1], 'checkpoint_ok'))).toBe(false);
  }, 600_000);
});
