/**
 * The resubmitted job of a checkpointed run (new job id, same working directory):
 *   resume overhead  wrapper spawned → it holds the restored program's PID, minus the daemon's
 *                    restore time (resume request → pidfile, both seen by the bench)
 *   exit detection   the restored program exits (its own timestamp) → the wrapper exits
 * The program is ended (SIGTERM → it stamps and exits 42) 0.3–1.3 s after the resume.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomDelay } from '../clock.js';
import { findProgram, readStamps, signalProgram, waitForProgramExit, type BenchContext, type Run, type Tool } from '../jobs.js';
import { daemonTime, refusal, reportedTime } from '../daemon.js';
import { DirWatch, waitUntil } from '../watch.js';

/** The restored program (found under the pidfile's PID: the shim's tree, or the program itself). */
export async function restoredProgram(tool: Tool, workdir: string): Promise<number> {
  const pidfile = join(tool.runDir(workdir), 'checkpoint', 'pidfile');
  const root = Number(readFileSync(pidfile, 'utf8').trim());
  return waitUntil(() => findProgram(root), { timeoutMs: 5000, what: `the restored program under PID ${root}` });
}

export interface ResumeResult {
  resumeMs: number;
  restoreMs: number | undefined;
  restoreReportedMs: number | undefined;
  startToRequestMs: number | undefined;
  pidfileToReadyMs: number | undefined;
  exitMs: number;
  exitCode: number | null;
  exitCodeExpected: number;
  peakRssMiB: number | undefined;
}

export async function resumeAndExit(tool: Tool, ctx: BenchContext, run: Run, jobId: string, { pollMs = 5 } = {}): Promise<ResumeResult> {
  const images = new DirWatch(join(tool.runDir(run.workdir), 'checkpoint'), { requireExists: true });
  const requestName = `${jobId}.resume`;
  ctx.spoolWatch.forget(requestName);
  const job = tool.start({ jobId, workdir: run.workdir, spool: ctx.spool, stamps: run.stamps });
  try {
    const resumed = tool.resumed(job, pollMs);
    resumed.catch(() => undefined); // if the daemon refuses, the race below ends first
    const readyAt = await Promise.race([resumed, refusal(ctx.daemon, 'resume', jobId, 60_000)]);
    job.sampleRss();
    const requestAt = await ctx.spoolWatch.waitFor(requestName, 1000);
    const pidfileAt = await images.waitFor('pidfile', 1000);
    const report = await ctx.daemon.reportFor('resume', jobId);
    const restoreMs = daemonTime(report, requestAt, pidfileAt);
    const program = await restoredProgram(tool, run.workdir);
    await randomDelay(300, 1300);
    job.sampleRss();
    const exitsBefore = readStamps(run.stamps).exits.length;
    await signalProgram(program);
    const programExit = await waitForProgramExit(run.stamps, exitsBefore);
    const exit = await job.exit(15_000);
    return {
      // NaN when the daemon's time is unknown: left out of the figures, the rest of the sample kept.
      resumeMs: readyAt - job.spawnedAt - (restoreMs ?? NaN),
      restoreMs,
      restoreReportedMs: reportedTime(report),
      startToRequestMs: requestAt === undefined ? undefined : requestAt - job.spawnedAt,
      pidfileToReadyMs: pidfileAt === undefined ? undefined : readyAt - pidfileAt,
      exitMs: exit.at - programExit.at,
      exitCode: exit.code,
      exitCodeExpected: tool.expectedExitAfterResume,
      peakRssMiB: job.peakRss,
    };
  } catch (error) {
    job.kill();
    throw error;
  } finally {
    images.close();
  }
}
