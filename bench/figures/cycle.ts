/**
 * One fresh start and one checkpoint cycle of a wrapper:
 *   start-up         wrapper spawned → the program's first action (its own timestamp)
 *   reaction         checkpoint signal → request file appears in the spool dir (bench inotify)
 *   cycle overhead   signal → wrapper exit 99, minus the daemon's dump time (request file →
 *                    checkpoint_ok, both seen by the bench; bench/daemon.ts daemonTime)
 * The signal comes at a random time 0.3–1.3 s after the program started, as a scheduler's does,
 * so a polling wrapper is caught at a random phase of its poll.
 */
import { now, randomDelay } from '../clock.js';
import { runDirWatch, waitForStart, type BenchContext, type Run, type Tool } from '../jobs.js';
import { daemonTime, refusal, reportedTime } from '../daemon.js';

export interface CycleResult {
  startupMs: number;
  reactionMs: number;
  cycleMs: number | undefined;
  dumpMs: number | undefined;
  dumpReportedMs: number | undefined;
  okToExitMs: number | undefined;
  peakRssMiB: number | undefined;
  programPid: number;
}

export async function checkpointCycle(tool: Tool, ctx: BenchContext, run: Run, jobId: string): Promise<CycleResult> {
  const job = tool.start({ jobId, workdir: run.workdir, spool: ctx.spool, stamps: run.stamps });
  try {
    const started = await waitForStart(run.stamps, 1);
    const startupMs = started.at - job.spawnedAt;
    const runDir = runDirWatch(tool, run.workdir);
    try {
      job.sampleRss();
      await randomDelay(300, 1300);
      job.sampleRss();
      const requestName = `${jobId}.checkpoint`;
      ctx.spoolWatch.forget(requestName);
      const signalAt = now();
      process.kill(job.pid, 'SIGUSR2');
      const requestAt = await ctx.spoolWatch.waitFor(requestName, 10_000);
      if (requestAt === undefined) throw new Error(`${tool.name} ${jobId}: no checkpoint request within 10 s\n${job.stderr}`);
      const okAt = await Promise.race([runDir.waitFor('checkpoint_ok', 15_000), refusal(ctx.daemon, 'checkpoint', jobId, 15_000)]);
      job.sampleRss();
      const exit = await job.exit(15_000);
      if (exit.code !== 99) throw new Error(`${tool.name} ${jobId}: exit ${exit.code ?? exit.signal} after the checkpoint, expected 99\n${job.stderr}`);
      const report = await ctx.daemon.reportFor('checkpoint', jobId);
      const dumpMs = daemonTime(report, requestAt, okAt);
      return {
        startupMs,
        reactionMs: requestAt - signalAt,
        cycleMs: dumpMs === undefined ? undefined : exit.at - signalAt - dumpMs,
        dumpMs,
        dumpReportedMs: reportedTime(report),
        okToExitMs: okAt === undefined ? undefined : exit.at - okAt,
        peakRssMiB: job.peakRss,
        programPid: started.pid,
      };
    } finally {
      runDir.close();
    }
  } catch (error) {
    job.kill();
    throw error;
  }
}
