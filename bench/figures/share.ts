/**
 * CPU share under contention. ckpt-run starts the program in a session of its own (CRIU dumps a
 * tree that owns its session). Where the kernel groups tasks by session (autogroup:
 * kernel.sched_autogroup_enabled=1, for tasks in the root CPU cgroup), each session is one
 * scheduling entity, so the question is whether that costs the program CPU. The program (one
 * busy loop per CPU) runs against another session holding as many busy loops (another job on
 * the same cores), (a) plainly, as the job script's own program in the job's session, and
 * (b) under ckpt-run in the job's session; A/B alternating, ROUNDS windows of SECONDS each.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../clock.js';
import { CKPT_RUN, type BenchContext } from '../jobs.js';
import { cmdline, cpuMs, killAll } from '../procfs.js';
import { summarize, type Summary } from '../stats.js';

/** Whether the kernel schedules sessions as groups here, in words either way. */
export interface SessionGrouping {
  applies: boolean;
  why: string;
}

export interface ShareResult {
  grouping: SessionGrouping;
  /** Busy loops of the program, and of the other session. */
  width: number;
  seconds: number;
  /** The program's CPU in % of one CPU, per window. */
  plain: Summary | undefined;
  ckptRun: Summary | undefined;
}

export interface ShareOptions {
  rounds: number;
  seconds: number;
  width: number;
}

/** Whether the kernel schedules this process's sessions as groups, and why (not). */
export function sessionGrouping(): SessionGrouping {
  let enabled: boolean;
  try {
    enabled = readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
  } catch {
    return { applies: false, why: 'no autogroup in this kernel (CONFIG_SCHED_AUTOGROUP off)' };
  }
  if (!enabled) return { applies: false, why: 'kernel.sched_autogroup_enabled=0' };
  // Autogroup applies to tasks of the root CPU cgroup only; a job's own CPU cgroup replaces it.
  const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n').map((line) => line.split(':'));
  const cpu = lines.find(([, controllers]) => controllers.split(',').includes('cpu')) ?? lines.find(([id]) => id === '0');
  if (cpu && cpu[2] !== '/') return { applies: false, why: `in the CPU cgroup ${cpu[2]}, where the kernel does not group by session` };
  return { applies: true, why: 'kernel.sched_autogroup_enabled=1 and the root CPU cgroup: each session is one scheduling group' };
}

/** A program of WIDTH busy loops, named by $0 = TAG so that its processes can be found. */
function busyArgv(width: number, tag: string): string[] {
  return ['sh', '-c', `i=0; while [ $i -lt ${width} ]; do (while :; do :; done) & i=$((i + 1)); done; wait`, tag];
}

/** The processes running exactly ARGV: the sh and its forked loops share its command line. */
function processesOf(argv: string[]): number[] {
  const wanted = argv.join('\0');
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => cmdline(pid)?.join('\0') === wanted);
}

const cpuMsOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);

/** The CPU the program's processes get over SECONDS once all WIDTH loops run, in % of one CPU. */
async function shareOf(argv: string[], width: number, seconds: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  let pids = processesOf(argv);
  while (pids.length < width + 1) {
    if (Date.now() > deadline) throw new Error(`the program ${argv.at(-1)} did not start its ${width} loops within 10 s`);
    await sleep(20);
    pids = processesOf(argv);
  }
  await sleep(500); // the scheduler settles on the new groups
  const before = cpuMsOf(pids);
  await sleep(seconds * 1000);
  const percent = ((cpuMsOf(pids) - before) / (seconds * 1000)) * 100;
  killAll(pids, 'SIGKILL');
  return percent;
}

/** One window: the program started as a job's shell starts it (setsid: the job's session), plainly or under ckpt-run. */
async function window(ctx: BenchContext, how: 'plain' | 'ckpt-run', round: number, width: number, seconds: number): Promise<number> {
  const argv = busyArgv(width, `share-${how}-${round}`);
  const dir = join(ctx.sandbox, `share-${how}-${round}`);
  mkdirSync(dir);
  const job = how === 'plain'
    ? spawn('setsid', argv, { stdio: 'ignore', cwd: dir })
    : spawn('setsid', [process.execPath, CKPT_RUN, '--job-id', `share-${round}`, '--spool-dir', ctx.spool, '--no-daemon-check', '--', ...argv], { stdio: 'ignore', cwd: dir });
  const ended = new Promise((resolve) => job.once('close', resolve));
  try {
    return await shareOf(argv, width, seconds);
  } finally {
    killAll(processesOf(argv), 'SIGKILL');
    await Promise.race([ended, sleep(10_000)]);
  }
}

export async function shareRun(ctx: BenchContext, { rounds, seconds, width }: ShareOptions): Promise<ShareResult> {
  const grouping = sessionGrouping();
  const contender = busyArgv(width, 'share-contender');
  const other = spawn('setsid', contender, { stdio: 'ignore' });
  const plain: number[] = [];
  const underCkptRun: number[] = [];
  try {
    for (let round = 1; round <= rounds; round += 1) {
      const order = round % 2 === 1 ? (['plain', 'ckpt-run'] as const) : (['ckpt-run', 'plain'] as const);
      for (const how of order) (how === 'plain' ? plain : underCkptRun).push(await window(ctx, how, round, width, seconds));
    }
  } finally {
    killAll(processesOf(contender), 'SIGKILL');
    other.kill('SIGKILL');
  }
  return { grouping, width, seconds, plain: summarize(plain), ckptRun: summarize(underCkptRun) };
}
