/**
 * A criu that hangs at the hardware-breakpoint step never freezes a job (issue: criu 4.1.1 on
 * Firecracker VMs waits for ever for a breakpoint that the hypervisor never delivers).
 * On these machines the real criu 4.1.1 (Debian trixie, installed into its own prefix by
 * scripts/install-criu.sh --suite trixie) hangs so with its defaults. Where breakpoints do trap,
 * a stand-in takes its place: the real criu, except that a dump with breakpoints on writes the
 * same last log lines, stops the program (SIGSTOP, as a criu would hold it) and waits for ever.
 *   a. ckpt-daemon --check finds the stall with a canary and says criu runs without breakpoints;
 *   b. a daemon told breakpoints work (--criu-breakpoints on) kills the hung dump at its deadline,
 *      the program runs on (not stopped), the job says so; the daemon turns breakpoints off and
 *      the job's next signal checkpoints; the next job resumes it to the program's own exit code.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, processState } from '../../src/proc/processes.js';
import { counted, COUNTER, makeSandbox, readOr, ROOT, runCkpt, type Proc, type Sandbox } from '../helpers/launcher-harness.js';
import { RealDaemon, CKPT_DAEMON } from '../helpers/real-daemon.js';
import { criuProbe, IN_CI, realPartAvailable } from '../helpers/real-parts.js';
import { ensureBuilt } from '../helpers/build.js';

const TRIXIE_PREFIX = '/opt/ckpt-run/criu-trixie';
const TRIXIE_CRIU = join(TRIXIE_PREFIX, 'bin/criu');
const DEADLINE_S = 5;

/** trixie's criu 4.1.1 in its own prefix (CI installs it; elsewhere only when asked to). */
function trixieCriu(): string | undefined {
  if (!existsSync(TRIXIE_CRIU) && IN_CI) {
    execFileSync('bash', [join(ROOT, 'scripts/install-criu.sh'), '--suite', 'trixie', '--no-link'], {
      stdio: 'inherit',
      env: { ...process.env, CKPT_CRIU_PREFIX: TRIXIE_PREFIX },
      timeout: 300_000,
    });
  }
  return existsSync(TRIXIE_CRIU) ? TRIXIE_CRIU : undefined;
}

/** Whether a dump of a sleep with criu's defaults stalls here (bounded): the install's canary says the same. */
function stallsHere(criu: string): boolean {
  // Its stdio away from the pipe, or spawnSync would wait for the sleep to end.
  const sleeper = spawnSync('sh', ['-c', 'setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
  const pid = Number(sleeper.stdout.trim());
  const dir = join(ROOT, `.criu-stall-probe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const dump = spawnSync(criu, ['dump', '-t', String(pid), '-D', dir, '-o', 'dump.log'], { timeout: 8000, killSignal: 'SIGKILL' });
    return dump.error !== undefined && (dump.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
  } finally {
    killAll([pid], 'SIGKILL'); // unless criu dumped (and so killed) it
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The stand-in for nodes whose breakpoints trap (see the module comment). */
function standIn(dir: string, criu: string): string {
  const path = join(dir, 'hanging-criu');
  writeFileSync(
    path,
    `#!/bin/sh
[ "$1" = dump ] && [ "$CRIU_FAULT" != 130 ] || exec '${criu}' "$@"
while [ $# -gt 0 ]; do case $1 in -t) pid=$2 ;; -D) images=$2 ;; esac; shift; done
printf '%s\\n' '(00.036145) Seized task '"$pid"', state 1' '(00.042038) Putting parasite blob into 0x1->0x2' \\
  '(00.044954) Waiting for '"$pid"' to trap' '(00.044960) Daemon '"$pid"' exited trapping' '(00.044968) Sent msg to daemon 3 0 0' > "$images/dump.log"
kill -STOP "$pid"
exec sleep 100000
`,
  );
  chmodSync(path, 0o755);
  return path;
}

describe.runIf(realPartAvailable('criu deadlines on real CRIU', criuProbe))('a criu that hangs at the breakpoint step never freezes a job', () => {
  let sandbox: Sandbox;
  let hanging: string;
  let real: boolean;

  beforeAll(() => {
    ensureBuilt();
    sandbox = makeSandbox('ckpt-criu-deadline-');
    chmodSync(sandbox.dir, 0o755);
    const trixie = trixieCriu();
    real = trixie !== undefined && stallsHere(trixie);
    hanging = real ? (trixie as string) : standIn(sandbox.dir, process.env.CKPT_CRIU ?? 'criu');
    console.log(`criu-deadline: the hanging criu is ${real ? `the real criu 4.1.1 (${hanging}): its dumps stall here` : `a stand-in (${hanging}): breakpoints trap here`}`);
  }, 360_000);

  afterAll(() => {
    if (sandbox) rmSync(sandbox.dir, { recursive: true, force: true });
  });

  it('a. ckpt-daemon --check finds the stall with its canary and runs criu without breakpoints', () => {
    const check = spawnSync(process.execPath, [CKPT_DAEMON, '--check', '--criu', hanging], { encoding: 'utf8', timeout: 120_000 });
    expect(check.stderr).toBe('');
    expect(check.stdout).toContain('breakpoints:   hardware breakpoints do not trap on this node: criu runs without them');
    expect(check.stdout).toMatch(/canary: +dumped and restored in \d+ ms/);
    expect(check.stdout).toContain('verdict:       usable');
    expect(check.status).toBe(0);
  }, 130_000);

  it('b. the hung dump is killed at its deadline, the program runs on, the next signal checkpoints, the next job resumes', async () => {
    const logPath = join(sandbox.dir, 'daemon.log');
    const daemon = await RealDaemon.start({
      spool: sandbox.spool,
      logPath,
      criu: hanging,
      imageKey: join(dirname(logPath), 'key', 'image.key'),
      extraArgs: ['--criu-breakpoints', 'on', '--criu-deadline', String(DEADLINE_S)],
    });
    const job = (id: string): Proc => runCkpt(sandbox, ['--job-id', id, '--min-runtime', '0', '--', COUNTER, '100', '0.1', '9']);
    try {
      const first = job('deadline-1');
      await first.waitFor((p) => counted(p.stdout).length >= 5, '5 lines before the first signal', 30_000);
      const signalled = Date.now();
      first.child.kill('SIGUSR2');
      await first.waitFor((p) => /checkpoint failed: /.test(p.stderr), "the job's report of the killed dump", (DEADLINE_S + 30) * 1000);
      const waited = Date.now() - signalled;
      expect(waited).toBeGreaterThanOrEqual(DEADLINE_S * 1000);
      expect(first.stderr).toMatch(/criu dump ran past its deadline and was killed at the "curing" stage .*; the program runs on; hardware breakpoints do not trap on this node/);
      expect(first.stderr).toMatch(/The program keeps running; the next checkpoint signal tries again\./);
      // It really runs: not stopped, and it keeps counting.
      const root = Number(/checkpoint requested for PID (\d+)/.exec(first.stderr)?.[1]);
      expect(['t', 'T']).not.toContain(processState(root));
      const before = counted(first.stdout).length;
      await first.waitFor((p) => counted(p.stdout).length >= before + 5, '5 more lines after the killed dump', 10_000);
      expect(daemon.log()).toMatch(/criu runs without them from now on/);
      expect(readOr(join(sandbox.workdir, '.ckpt-run/default/dump_failed'))).toMatch(/"program":"running"/);

      first.child.kill('SIGUSR2');
      await first.expectExit(99, 60_000);
      const printed = counted(first.stdout);
      expect(printed).toEqual(Array.from({ length: printed.length }, (_, i) => i + 1));

      const second = job('deadline-2');
      await second.expectExit(9, 60_000);
      const all = [...printed, ...counted(second.stdout)];
      expect(all).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    } finally {
      await daemon.stop();
    }
  }, 180_000);
});
