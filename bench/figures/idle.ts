/**
 * What a wrapper costs while the program just runs (both wrappers measured at the same time,
 * each on its own program). After `warmupSeconds` (start-up and its one-off after-effects, such
 * as V8's first idle-time GCs, are reported apart as "start-up CPU"), a window of `seconds`:
 *   idle CPU   CPU of the wrapper's processes and all they fork, the program's subtree left
 *              out, scaled to an hour. Exact when a CPU-accounting cgroup can be made (root):
 *              the wrapper-side processes are moved into it, the program stays outside.
 *              Else from /proc: threads' schedstat (ns) + reaped children's cutime/cstime
 *              (10 ms ticks: ±10 ms over the window)
 *   forks      wrapper-side processes that appear during the window (tree sampled every
 *              10 ms: a process living less than that can be missed), scaled to an hour
 *   peak RSS   the wrapper process's VmHWM
 * Then the program ends on its own (SIGTERM → exit 42) in this fresh (never checkpointed) run:
 *   fresh exit detection   program exit → wrapper exit, waited for up to `exitWaitMs`.
 */
import { now, randomDelay, sleep } from '../clock.js';
import { cpuCgroup, type CpuCgroup } from '../cgroup.js';
import { signalProgram, waitForProgramExit, waitForStart, type BenchContext, type Job, type Run, type Stamp, type Tool } from '../jobs.js';
import { cpuMs, identity, treeOf } from '../procfs.js';

export interface IdleEntry {
  tool: Tool;
  run: Run;
  jobId: string;
}

export interface IdleResult {
  windowS: number;
  warmupS: number;
  cpuMethod: string;
  startupCpuMs: number;
  cpuSecondsPerHour: number;
  cpuMsInWindow: number;
  forksPerHour: number;
  forksInWindow: number;
  peakRssMiB: number | undefined;
  freshExitMs: number | undefined;
  freshExitCode: number | null | undefined;
  freshExitNeverMs: number | undefined;
}

/** One wrapper in the idle window, and what is measured of it. */
interface Lane {
  tool: Tool;
  run: Run;
  job: Job;
  program: Stamp;
  startupCpuMs: number;
  /** The wrapper's processes when the window opens (PID@start time); any other one was forked in it. */
  members: Set<string | undefined>;
  forked: Set<string>;
  cgroup: CpuCgroup | undefined;
  cpu0: number;
  cpu1: number;
}

function wrapperSide(job: Job, programPid: number): number[] {
  return treeOf(job.pid, new Set([programPid]));
}

const procCpu = (lane: { job: Job; program: Stamp }): number => wrapperSide(lane.job, lane.program.pid).reduce((sum, pid) => sum + cpuMs(pid), 0);

export async function idleRun(
  entries: IdleEntry[],
  ctx: BenchContext,
  { seconds, warmupSeconds, exitWaitMs }: { seconds: number; warmupSeconds: number; exitWaitMs: number },
): Promise<Record<string, IdleResult>> {
  const jobs = entries.map(({ tool, run, jobId }) => ({
    tool,
    run,
    job: tool.start({ jobId, workdir: run.workdir, spool: ctx.spool, stamps: run.stamps }),
  }));
  const lanes: Lane[] = [];
  try {
    const programs: Stamp[] = [];
    for (const entry of jobs) programs.push(await waitForStart(entry.run.stamps, 1));
    await sleep(warmupSeconds * 1000);
    jobs.forEach((entry, index) => {
      const program = programs[index];
      const lane: Lane = {
        ...entry,
        program,
        startupCpuMs: procCpu({ job: entry.job, program }),
        members: new Set(wrapperSide(entry.job, program.pid).map(identity)),
        forked: new Set(),
        cgroup: cpuCgroup(entry.tool.name),
        cpu0: 0,
        cpu1: 0,
      };
      if (lane.cgroup && !wrapperSide(lane.job, program.pid).every((pid) => lane.cgroup?.add(pid))) {
        lane.cgroup.remove();
        lane.cgroup = undefined;
      }
      lane.job.sampleRss();
      lanes.push(lane);
    });
    const t0 = now();
    for (const lane of lanes) {
      lane.cpu0 = lane.cgroup ? lane.cgroup.usageMs() : procCpu(lane);
    }
    const sampler = setInterval(() => {
      for (const lane of lanes) {
        for (const pid of wrapperSide(lane.job, lane.program.pid)) {
          const id = identity(pid);
          if (id && !lane.members.has(id)) lane.forked.add(id);
        }
        lane.job.sampleRss();
      }
    }, 10);
    await sleep(seconds * 1000);
    clearInterval(sampler);
    for (const lane of lanes) {
      lane.cpu1 = lane.cgroup ? lane.cgroup.usageMs() : procCpu(lane);
    }
    const t1 = now();
    for (const lane of lanes) lane.job.sampleRss();
    const hours = (t1 - t0) / 3_600_000;
    const results: Record<string, IdleResult> = {};
    await randomDelay(0, 1000);
    for (const lane of lanes) await signalProgram(lane.program.pid);
    for (const lane of lanes) {
      const programExit = await waitForProgramExit(lane.run.stamps, 0);
      const exit = await Promise.race([lane.job.exited, sleep(exitWaitMs).then(() => undefined)]);
      results[lane.tool.name] = {
        windowS: (t1 - t0) / 1000,
        warmupS: warmupSeconds,
        cpuMethod: lane.cgroup ? lane.cgroup.kind : '/proc (schedstat + cutime/cstime)',
        startupCpuMs: lane.startupCpuMs,
        cpuSecondsPerHour: (lane.cpu1 - lane.cpu0) / 1000 / hours,
        cpuMsInWindow: lane.cpu1 - lane.cpu0,
        forksPerHour: lane.forked.size / hours,
        forksInWindow: lane.forked.size,
        peakRssMiB: lane.job.peakRss,
        freshExitMs: exit ? exit.at - programExit.at : undefined,
        freshExitCode: exit ? exit.code : undefined,
        freshExitNeverMs: exit ? undefined : now() - programExit.at,
      };
    }
    return results;
  } finally {
    for (const entry of jobs) entry.job.kill();
    await sleep(50);
    for (const lane of lanes) lane.cgroup?.remove();
  }
}
