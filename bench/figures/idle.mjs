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
import { now, randomDelay, sleep } from '../clock.mjs';
import { cpuCgroup } from '../cgroup.mjs';
import { signalProgram, waitForProgramExit, waitForStart } from '../jobs.mjs';
import { cpuMs, identity, treeOf } from '../procfs.mjs';

function wrapperSide(job, programPid) {
  return treeOf(job.pid, new Set([programPid]));
}

const procCpu = (entry) => wrapperSide(entry.job, entry.program.pid).reduce((sum, pid) => sum + cpuMs(pid), 0);

export async function idleRun(entries, ctx, { seconds, warmupSeconds, exitWaitMs }) {
  const jobs = entries.map(({ tool, run, jobId }) => ({
    tool,
    run,
    job: tool.start({ jobId, workdir: run.workdir, spool: ctx.spool, stamps: run.stamps }),
  }));
  try {
    for (const entry of jobs) entry.program = await waitForStart(entry.run.stamps, 1);
    await sleep(warmupSeconds * 1000);
    for (const entry of jobs) {
      entry.startupCpuMs = procCpu(entry);
      entry.members = new Set(wrapperSide(entry.job, entry.program.pid).map(identity));
      entry.forked = new Set();
      entry.cgroup = cpuCgroup(entry.tool.name);
      if (entry.cgroup && !wrapperSide(entry.job, entry.program.pid).every((pid) => entry.cgroup.add(pid))) {
        entry.cgroup.remove();
        entry.cgroup = undefined;
      }
      entry.job.sampleRss();
    }
    const t0 = now();
    for (const entry of jobs) {
      entry.cpu0 = entry.cgroup ? entry.cgroup.usageMs() : procCpu(entry);
    }
    const sampler = setInterval(() => {
      for (const entry of jobs) {
        for (const pid of wrapperSide(entry.job, entry.program.pid)) {
          const id = identity(pid);
          if (id && !entry.members.has(id)) entry.forked.add(id);
        }
        entry.job.sampleRss();
      }
    }, 10);
    await sleep(seconds * 1000);
    clearInterval(sampler);
    for (const entry of jobs) {
      entry.cpu1 = entry.cgroup ? entry.cgroup.usageMs() : procCpu(entry);
    }
    const t1 = now();
    for (const entry of jobs) entry.job.sampleRss();
    const hours = (t1 - t0) / 3_600_000;
    const results = {};
    await randomDelay(0, 1000);
    for (const entry of jobs) await signalProgram(entry.program.pid);
    for (const entry of jobs) {
      const programExit = await waitForProgramExit(entry.run.stamps, 0);
      const exit = await Promise.race([entry.job.exited, sleep(exitWaitMs).then(() => undefined)]);
      results[entry.tool.name] = {
        windowS: (t1 - t0) / 1000,
        warmupS: warmupSeconds,
        cpuMethod: entry.cgroup ? entry.cgroup.kind : '/proc (schedstat + cutime/cstime)',
        startupCpuMs: entry.startupCpuMs,
        cpuSecondsPerHour: (entry.cpu1 - entry.cpu0) / 1000 / hours,
        cpuMsInWindow: entry.cpu1 - entry.cpu0,
        forksPerHour: entry.forked.size / hours,
        forksInWindow: entry.forked.size,
        peakRssMiB: entry.job.peakRss,
        freshExitMs: exit ? exit.at - programExit.at : undefined,
        freshExitCode: exit ? exit.code : undefined,
        freshExitNeverMs: exit ? undefined : now() - programExit.at,
      };
    }
    return results;
  } finally {
    for (const entry of jobs) entry.job.kill();
    await sleep(50);
    for (const entry of jobs) entry.cgroup?.remove();
  }
}
