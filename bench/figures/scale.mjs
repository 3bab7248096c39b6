/**
 * One daemon serving `count` concurrent jobs of one wrapper on this node: all start at once,
 * all get the checkpoint signal at once, all exit 99; all resubmitted jobs start at once and
 * resume; then every program ends. Reports the total time (first spawn → last exit) and, per
 * figure, the median and the slowest job (same definitions as the single-job figures). A job
 * that fails (or whose request the daemon refuses) is left out of the later phases and listed.
 */
import { join } from 'node:path';
import { now, sleep } from '../clock.mjs';
import { daemonTime, DaemonRefused, refusal } from '../daemon.mjs';
import { killStrays, makeRun, signalProgram, waitForProgramExit, waitForStart } from '../jobs.mjs';
import { summarize } from '../stats.mjs';
import { DirWatch } from '../watch.mjs';
import { restoredProgram } from './resume.mjs';

export async function scaleRun(tool, ctx, { count, prefix }) {
  const lanes = Array.from({ length: count }, (_, i) => ({ i, run: makeRun(ctx.sandbox, `${prefix}-${i + 1}`), alive: true }));
  const failures = [];
  const refusals = [];
  const watchers = [];
  const jobs = [];
  /** Runs one phase for every lane still in the race; a lane that throws drops out. */
  const phase = async (what, work) => {
    const live = lanes.filter((lane) => lane.alive);
    const results = await Promise.allSettled(live.map((lane) => work(lane)));
    results.forEach((result, k) => {
      if (result.status === 'fulfilled') return;
      const lane = live[k];
      lane.alive = false;
      lane.job?.kill();
      if (result.reason instanceof DaemonRefused) refusals.push({ job: result.reason.record.job, reason: result.reason.record.reason });
      else failures.push(`${prefix}-${lane.i + 1} ${what}: ${result.reason.message.split('\n')[0]}`);
    });
  };
  try {
    for (const lane of lanes) {
      lane.job = tool.start({ jobId: `${prefix}-${lane.i + 1}-a`, workdir: lane.run.workdir, spool: ctx.spool, stamps: lane.run.stamps });
      jobs.push(lane.job);
    }
    const firstSpawn = lanes[0].job.spawnedAt;
    await phase('start', async (lane) => {
      const start = await waitForStart(lane.run.stamps, 1, 120_000);
      lane.startupMs = start.at - lane.job.spawnedAt;
    });
    await sleep(500);
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.runDir = new DirWatch(tool.runDir(lane.run.workdir), { requireExists: true });
      watchers.push(lane.runDir);
    }
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.signalAt = now();
      process.kill(lane.job.pid, 'SIGUSR2');
    }
    await phase('checkpoint', async (lane) => {
      const jobId = lane.job.jobId;
      const okAt = await Promise.race([lane.runDir.waitFor('checkpoint_ok', 120_000), refusal(ctx.daemon, 'checkpoint', jobId, 120_000)]);
      const exit = await lane.job.exit(60_000);
      if (exit.code !== 99) throw new Error(`exit ${exit.code} after the checkpoint, expected 99`);
      const requestAt = ctx.spoolWatch.first.get(`${jobId}.checkpoint`);
      const dumpMs = daemonTime(await ctx.daemon.reportFor('checkpoint', jobId), requestAt, okAt);
      lane.checkpointedAt = exit.at;
      lane.reactionMs = requestAt - lane.signalAt;
      lane.cycleMs = exit.at - lane.signalAt - dumpMs;
    });
    const allCheckpointedAt = Math.max(...lanes.filter((l) => l.alive).map((l) => l.checkpointedAt));
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.images = new DirWatch(join(tool.runDir(lane.run.workdir), 'checkpoint'), { requireExists: true });
      watchers.push(lane.images);
    }
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.job = tool.start({ jobId: `${prefix}-${lane.i + 1}-b`, workdir: lane.run.workdir, spool: ctx.spool, stamps: lane.run.stamps });
      jobs.push(lane.job);
    }
    const resumeStart = Math.min(...lanes.filter((l) => l.alive).map((l) => l.job.spawnedAt));
    await phase('resume', async (lane) => {
      const jobId = lane.job.jobId;
      const resumed = tool.resumed(lane.job, 20);
      resumed.catch(() => undefined);
      const readyAt = await Promise.race([resumed, refusal(ctx.daemon, 'resume', jobId, 120_000)]);
      const requestAt = ctx.spoolWatch.first.get(`${jobId}.resume`);
      const pidfileAt = await lane.images.waitFor('pidfile', 1000);
      const restoreMs = daemonTime(await ctx.daemon.reportFor('resume', jobId), requestAt, pidfileAt);
      lane.readyAt = readyAt;
      lane.resumeMs = readyAt - lane.job.spawnedAt - restoreMs;
      lane.program = await restoredProgram(tool, lane.run.workdir);
    });
    const allResumedAt = Math.max(...lanes.filter((l) => l.alive).map((l) => l.readyAt));
    await phase('exit', async (lane) => {
      await signalProgram(lane.program);
      const programExit = await waitForProgramExit(lane.run.stamps, 0, 30_000);
      const exit = await lane.job.exit(60_000);
      if (exit.code !== tool.expectedExitAfterResume) throw new Error(`exit ${exit.code} after the program ended, expected ${tool.expectedExitAfterResume}`);
      lane.exitAt = exit.at;
      lane.exitMs = exit.at - programExit.at;
    });
    const done = lanes.filter((l) => l.alive);
    const pick = (key) => summarize(done.map((l) => l[key]));
    return {
      jobs: count,
      completed: done.length,
      totalMs: Math.max(...done.map((l) => l.exitAt)) - firstSpawn,
      phasesMs: { startAndCheckpoint: allCheckpointedAt - firstSpawn, resume: allResumedAt - resumeStart },
      startupMs: pick('startupMs'),
      reactionMs: pick('reactionMs'),
      cycleMs: pick('cycleMs'),
      resumeMs: pick('resumeMs'),
      exitMs: pick('exitMs'),
      failures,
      refusals,
    };
  } finally {
    for (const watcher of watchers) watcher.close();
    for (const job of jobs) job.kill();
    killStrays(ctx.sandbox);
  }
}
