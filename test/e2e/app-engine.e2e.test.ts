/**
 * ckpt-run --engine app with real parts and no checkpoint daemon at all (programs that save
 * themselves on a signal and exit 85):
 *   a. NumPy (Debian's python3-numpy): examples/numpy-loop.py, a seeded iterative computation,
 *      stopped by two real checkpoint signals (`simulate --manual`, at marks of its output) and
 *      resumed from the arrays it saved: its output and result.npy bit-identical to a run alone;
 *   b. a real OAR 2.5.9 (oar-local.sh): OAR's own checkpoint signal at walltime - N, exit 99 (after
 *      the 60-second rule), OAR's resubmission, the program resumed; every line once, its code;
 *   c. a real Slurm 22.05 (slurm-local.sh): `scancel --batch --signal=USR2`, ckpt-run requeues the
 *      job, Slurm runs it again (same id), the program resumes; every line once, its code.
 * b and c need root (they submit as a test user); in CI every part must be there. About 4 minutes.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted, makeSandbox, readOr, ROOT, runSimulate, summaryOf } from '../helpers/launcher-harness.js';
import { deleteActiveJobs, ensureOarUser, exitStatusOf, followChain, formatChain, oarProbe, oarsub, startCluster, stopCluster, type ClusterHandle, type OarUser } from '../helpers/oar-cluster.js';
import { preparePackage, type UserPackage } from '../helpers/oar-node.js';
import { pollFor, waitUntil } from '../helpers/poll.js';
import { realPartAvailable, type Probe } from '../helpers/real-parts.js';
import { asUser, sbatch, slurmJob, slurmProbe, startSlurm, stopSlurm } from '../helpers/slurm-cluster.js';

const USER = 'ckptoar';
const numbers = (count: number): number[] => Array.from({ length: count }, (_, k) => k + 1);

const numpyProbe: Probe = () => {
  const found = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'pipe' });
  return found.status === 0 ? undefined : 'no NumPy for /usr/bin/python3 (Debian: python3-numpy, in test/e2e/real-programs/packages.txt)';
};

describe.runIf(realPartAvailable('the app engine with NumPy', numpyProbe))('a. NumPy saves its arrays on the signal, twice, and ends bit-identical', () => {
  it('examples/numpy-loop.py: 600 steps, stopped at steps 200 and 400 by real signals, resumed from its own saves', async () => {
    // One BLAS thread: the same sums in the same order in both runs, whatever the machine.
    const argv = ['env', 'OPENBLAS_NUM_THREADS=1', '/usr/bin/python3', join(ROOT, 'examples/numpy-loop.py'), '600', '300'];
    const plainDir = makeSandbox('ckpt-app-numpy-').workdir;
    const plain = spawnSync(argv[0], argv.slice(1), { cwd: plainDir, encoding: 'utf8', timeout: 120_000 });
    expect(plain.status, plain.stderr).toBe(0);

    const workdir = makeSandbox('ckpt-app-numpy-').workdir;
    const sim = runSimulate(workdir, ['--engine', 'app', '--manual', '--', ...argv]);
    const stdoutLog = join(workdir, '.ckpt-run/simulate/stdout.log');
    for (const mark of [/^step 200 /m, /^step 400 /m]) {
      // The second mark is printed by the program started again, which resumed from its save.
      await waitUntil(() => mark.test(readOr(stdoutLog)) || sim.child.exitCode !== null, () => `${mark} in ${stdoutLog}\n${sim.stderr.slice(-3000)}`, 120_000);
      sim.child.kill('SIGUSR2');
    }
    const code = await sim.exitCode(180_000);
    const summary = summaryOf(workdir);
    console.log(`app e2e a: ${summary.verdict}\n${sim.stderr.split('\n').filter((line) => line.startsWith('numpy-loop:')).join('\n')}`);
    expect(code, `${summary.verdict}\n${sim.stderr.slice(-3000)}`).toBe(0);
    expect(summary).toMatchObject({ engine: 'app', ok: true, checkpoints: 2 });
    expect(sim.stderr.match(/^numpy-loop: resumed before step \d+ \(restarts [12]\)$/gm)).toHaveLength(2);
    expect(readFileSync(stdoutLog, 'utf8')).toBe(plain.stdout);
    expect(readFileSync(join(workdir, 'result.npy')).equals(readFileSync(join(plainDir, 'result.npy'))), 'result.npy differs').toBe(true);
  }, 300_000);
});

/** The package on the PATH of the jobs' user, and a folder of theirs per job (no daemon: the engine needs none). */
function userSetup(prefix: string): { user: OarUser; node: UserPackage; jobDir(name: string): string } {
  const user = ensureOarUser(USER);
  const node = preparePackage(user, prefix);
  return {
    user,
    node,
    jobDir(name) {
      const dir = join(node.base, name);
      mkdirSync(dir, { mode: 0o755 });
      chownSync(dir, user.uid, user.gid);
      return dir;
    },
  };
}

describe.runIf(realPartAvailable('the app engine on a real OAR', oarProbe))('b. --engine app under a real OAR 2.5.9', () => {
  let cluster: ClusterHandle | undefined;
  let setup: ReturnType<typeof userSetup> | undefined;

  beforeAll(() => {
    cluster = startCluster();
    setup = userSetup('oar-app-e2e');
  }, 600_000);

  afterAll(async () => {
    if (setup) await deleteActiveJobs(setup.user).catch((error) => console.warn(`app e2e: ${error}`));
    setup?.node.tearDown();
    if (cluster && !cluster.wasUp) stopCluster();
  }, 240_000);

  it("OAR's own signal at walltime - N: the program saves, exit 99, OAR resubmits, the new job resumes it; every line once, its exit code", async () => {
    const { user, node, jobDir } = setup as ReturnType<typeof userSetup>;
    // The signal 65-75 s into the job (walltime 90 s - 25 s, + OAR's 0-10 s): past OAR's 60-second rule.
    const count = 100;
    const dir = jobDir('b');
    const command = `ckpt-run --engine app -- ${join(node.pkg, 'examples/saving-counter.sh')} ${count} 1 42`;
    const firstId = oarsub(user, dir, ['-t', 'idempotent', '--checkpoint', '25', '-l', 'walltime=0:1:30', '-n', 'e2e-app', command]);
    const jobs = await followChain(firstId, { timeoutMs: 330_000 });
    const stdout = jobs.map((job) => readOr(join(dir, job.stdoutFile)));
    const stderr = jobs.map((job) => readOr(join(dir, job.stderrFile)));
    console.log(`app e2e b: ${formatChain(jobs)}\n${stderr.join('\n')}`);
    expect(jobs).toHaveLength(2);
    expect(exitStatusOf(jobs[0])).toEqual({ code: 99, signal: 0 });
    expect(exitStatusOf(jobs[1])).toEqual({ code: 42, signal: 0 });
    expect(jobs[1].resubmitJobId).toBe(jobs[0].id);
    expect(stdout.flatMap((text) => counted(text))).toEqual(numbers(count));
    expect(stderr[0]).toMatch(/checkpoint signal received \(the walltime ends in [\d.]+ s\)/);
    expect(stderr[0]).toMatch(/asking the program to save: SIGUSR2 to its process group/);
    // The reason, told by the walltime OAR gives the job; then the 60-second rule, kept.
    expect(stderr[0]).toMatch(/saving-counter: saved at \d+ \(walltime\)/);
    expect(stderr[0]).toMatch(/the program saved its state and exited [\d.]+ m?s after the signal/);
    expect(stderr[1]).toMatch(/starting the program again: it resumes from the state it saved/);
    expect(stderr[1]).toMatch(/saving-counter: from \d+ \(restarts: 1, previous stop: walltime\)/);
    expect(stderr[1]).toMatch(/program exited with code 42/);
  }, 420_000);
});

describe.runIf(realPartAvailable('the app engine on a real Slurm', slurmProbe))('c. --engine app under a real Slurm 22.05', () => {
  let wasUp = true;
  let setup: ReturnType<typeof userSetup> | undefined;
  let jobId: number | undefined;

  beforeAll(() => {
    wasUp = startSlurm();
    setup = userSetup('slurm-app-e2e');
  }, 600_000);

  afterAll(() => {
    if (setup && jobId !== undefined && slurmJob(jobId)?.JobState?.match(/^(PENDING|RUNNING|REQUEUED|COMPLETING)$/)) asUser(setup.user, ['scancel', String(jobId)]);
    setup?.node.tearDown();
    if (!wasUp) stopSlurm();
  }, 120_000);

  it('scancel --batch --signal=USR2: the program saves, ckpt-run requeues the job, the requeued job resumes it; every line once, its exit code', async () => {
    const { user, node, jobDir } = setup as ReturnType<typeof userSetup>;
    const count = 40;
    const dir = jobDir('c');
    const program = `${join(node.pkg, 'examples/saving-counter.sh')} ${count} 0.25 42`;
    const id = sbatch(user, dir, ['--requeue', '--open-mode=append', '--output=app.%j.out', `--wrap=exec ckpt-run --engine app -- ${program}`]);
    jobId = id;
    const output = join(dir, `app.${id}.out`);
    const state = (): string => `job ${id}: ${JSON.stringify(slurmJob(id))}`;
    await pollFor(() => (counted(readOr(output)).length >= 8 ? true : undefined), () => `8 lines in ${output} (${state()})`, 60_000, 200);
    asUser(user, ['scancel', '--batch', '--signal=USR2', String(id)]);
    await pollFor(() => (slurmJob(id)?.Restarts === '1' ? true : undefined), () => `the job requeued by ckpt-run (${state()})`, 60_000, 250);
    const done = await pollFor(() => {
      const job = slurmJob(id);
      return job && /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL)$/.test(job.JobState) ? job : undefined;
    }, () => `the requeued job to start again and end (${state()})`, 180_000, 250);
    const text = readOr(output);
    console.log(`app e2e c: job ${id}: ${done.JobState} ExitCode=${done.ExitCode} Restarts=${done.Restarts}\n${text.split('\n').filter((line) => !/^\d+$/.test(line)).join('\n')}`);
    expect(done).toMatchObject({ JobState: 'FAILED', ExitCode: '42:0', Restarts: '1' }); // Slurm calls any non-zero exit FAILED
    expect(counted(text)).toEqual(numbers(count));
    // Slurm says nothing of a scancel --signal, and the job cannot read its --signal lead: the one
    // classifier (scheduler/stop-reason.ts) then counts a checkpoint signal as the walltime's. The
    // program was told the same reason as the job's log and record.
    expect(text).toMatch(/saving-counter: saved at \d+ \(walltime\)/);
    // The program saves in ~70 ms: exit 99 waits for no scheduler answer, so the reason is said
    // either once Slurm answered, or as the clock's guess kept in the record.
    expect(text).toMatch(/this job stops for: walltime|the record says walltime, from the clock/);
    expect(text).toMatch(new RegExp(`requeueing the job: scontrol requeue ${id}`));
    expect(text).toMatch(new RegExp(`job slurm-${id}-1, run slurm-${id}: resuming the checkpoint`));
    expect(text).toMatch(/saving-counter: from \d+ \(restarts: 1, previous stop: walltime\)/);
  }, 420_000);
});
