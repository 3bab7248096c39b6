/**
 * Resume on "another node" (test/helpers/other-node.ts: between the two jobs, every entry the
 * job's user made in /tmp, /var/tmp and /dev/shm is removed), through the root daemon and real
 * CRIU, the job an ordinary user's: programs that keep state in those folders resume and end as
 * an uninterrupted run, because the daemon carried that state with the checkpoint. Also: a
 * checkpoint whose recorded CPU features this node lacks is refused before the restore.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CKPT_RUN, makeSandbox, Proc, ROOT, type Sandbox } from '../helpers/launcher-harness.js';
import { onAnotherNode } from '../helpers/other-node.js';
import { RealDaemon } from '../helpers/real-daemon.js';
import { criuForUsers, criuReady, realPartAvailable, type Probe } from '../helpers/real-parts.js';
import { ensureTestUser, type TestUser } from '../helpers/test-user.js';

const FIXTURES = join(ROOT, 'test/e2e/real-programs');

const programs: Probe = () => {
  const missing = ['/usr/bin/mpirun', '/usr/bin/mpicc', '/usr/bin/python3'].filter((path) => spawnSync(path, ['--version']).status !== 0);
  return missing.length ? `missing: ${missing.join(' ')} (sudo bash scripts/test-all.sh installs them)` : undefined;
};
const ready: Probe = () => criuReady()() ?? (criuForUsers() ? programs() : 'root lacks CAP_SYS_RESOURCE and the prlimit shim is missing');

interface Case {
  name: string;
  argv: () => string[];
  /** The checkpoint signal goes once this is in the output. */
  mark: RegExp;
  /** Where the program keeps node-local state: the test checks it was there, and removed. */
  local: RegExp;
}

let mpiRing = '';

const CASES: Case[] = [
  {
    name: 'Python, a /tmp scratch file it keeps writing and reading',
    argv: () => ['/usr/bin/python3', join(FIXTURES, 'tmp_scratch.py'), '80'],
    mark: /^step 30 /m,
    local: /^\/tmp\/ckpt-scratch-/,
  },
  {
    name: 'Open MPI, plain mpirun -np 2 (no environment settings)',
    argv: () => ['/usr/bin/mpirun', '-np', '2', mpiRing, '60', '50'],
    mark: /^step 20 /m,
    local: /^\/tmp\/ompi\.|^\/dev\/shm\/vader_segment\./,
  },
];

describe.runIf(realPartAvailable('resume on another node (real CRIU)', ready))('resume on another node: node-local state travels with the checkpoint', () => {
  let sandbox: Sandbox;
  let daemon: RealDaemon;
  let user: TestUser;
  let workdir: string;

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-p', ROOT], { stdio: 'pipe' });
    sandbox = makeSandbox('ckpt-other-node-');
    chmodSync(sandbox.dir, 0o755);
    // A user of this suite's own: the step removes what the user made in /tmp, and other suites' users may be at work.
    user = ensureTestUser('ckpt-othernode');
    workdir = join(sandbox.dir, 'user-work');
    mkdirSync(workdir);
    chownSync(workdir, user.uid, user.gid);
    mpiRing = join(sandbox.dir, 'mpi-ring');
    execFileSync('/usr/bin/mpicc', ['-O2', '-o', mpiRing, join(ROOT, 'examples/mpi-ring.c')], { stdio: 'pipe' });
    daemon = await RealDaemon.start({
      spool: sandbox.spool,
      logPath: join(sandbox.dir, 'daemon.log'),
      criu: criuForUsers() ?? 'criu',
      imageKey: join(sandbox.dir, 'image-key', 'image.key'),
      verbose: true,
    });
  });

  afterAll(async () => {
    expect(await daemon?.stop()).toBe(0);
    if (sandbox) rmSync(sandbox.dir, { recursive: true, force: true });
  });

  /** ckpt-run as the test user, in its own folder, with the environment a job has (no OAR, no Slurm). */
  const job = (runId: string, jobId: string, argv: string[]): Proc =>
    new Proc(
      spawn(process.execPath, [CKPT_RUN, '--spool-dir', sandbox.spool, '--run-id', runId, '--job-id', jobId, '--min-runtime', '0', '--', ...argv], {
        cwd: workdir,
        uid: user.uid,
        gid: user.gid,
        env: { ...process.env, OAR_JOB_ID: '', OAR_ARRAY_ID: '', CKPT_SPOOL_DIR: '', HOME: workdir },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );

  for (const [index, program] of CASES.entries()) {
    it(`${program.name}: checkpointed, its node-local files removed, resumed: output identical`, async () => {
      const [command, ...args] = program.argv();
      const plain = spawnSync(command, args, { cwd: workdir, uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: 120_000, env: { ...process.env, HOME: workdir } });
      expect(plain.status, plain.stderr).toBe(0);

      const runId = `case-${index}`;
      const started = Date.now();
      const first = job(runId, `${runId}-1`, program.argv());
      await first.waitFor((p) => program.mark.test(p.stdout), `${program.mark} in the output`, 60_000);
      first.child.kill('SIGUSR2');
      expect(await first.exitCode(60_000), first.stderr).toBe(99);
      const carried = /node-local files carried with the checkpoint: (.*)$/m.exec(first.stderr)?.[1];
      const removed = onAnotherNode(user.uid, started);
      expect(removed.filter((path) => program.local.test(path)), `removed: ${removed.join(' ')}`).not.toEqual([]);

      const second = job(runId, `${runId}-2`, program.argv());
      const code = await second.exitCode(120_000);
      const figures = daemon.lines().filter((line) => line.includes(`job ${runId}-`) && / (dump|restore) of /.test(line)).map((line) => line.replace(/^.*?: job /, 'job '));
      console.log(`${program.name}: removed before the resume: ${removed.join(' ')}\n${figures.join('\n')}`);
      expect(code, `${second.stderr}\n${daemon.tail()}`).toBe(0);
      expect(first.stdout + second.stdout).toBe(plain.stdout);
      expect(carried).toBeDefined();
    }, 300_000);
  }
});
