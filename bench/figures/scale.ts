/**
 * One daemon serving `count` concurrent jobs of one wrapper on this node: all start at once,
 * all get the checkpoint signal at once, all exit 99; all resubmitted jobs start at once and
 * resume; then every program ends. Reports the total time (first spawn → last exit) and, per
 * figure, the median and the slowest job (same definitions as the single-job figures). A job
 * that fails (or whose request the daemon refuses) is left out of the later phases and listed.
 */
import { join } from 'node:path';
import { now, sleep } from '../clock.js';
import { daemonTime, DaemonRefused, refusal } from '../daemon.js';
import { killStrays, makeRun, signalProgram, waitForProgramExit, waitForStart, type BenchContext, type Job, type Run, type Tool } from '../jobs.js';
import { summarize, type Summary } from '../stats.js';
import { DirWatch } from '../watch.js';
import { restoredProgram } from './resume.js';

/** One job of the scale run through its phases; a phase's figures are set once it passed. */
interface Lane {
  i: number;
  run: Run;
  alive: boolean;
  job?: Job;
  runDir?: DirWatch;
  images?: DirWatch;
  signalAt?: number;
  checkpointedAt?: number;
  readyAt?: number;
  program?: number;
  exitAt?: number;
  startupMs?: number;
  reactionMs?: number;
  cycleMs?: number;
  resumeMs?: number;
  exitMs?: number;
}

/** A lane still in the race has come through every earlier phase: what they set is there. */
const past = <T>(value: T | undefined): T => value as T;

export interface ScaleResult {
  jobs: number;
  completed: number;
  totalMs: number;
  phasesMs: { startAndCheckpoint: number; resume: number };
  startupMs: Summary | undefined;
  reactionMs: Summary | undefined;
  cycleMs: Summary | undefined;
  resumeMs: Summary | undefined;
  exitMs: Summary | undefined;
  failures: string[];
  refusals: Array<{ job: string; reason: string | undefined }>;
}

/** Runs one phase for every lane still in the race; a lane that throws drops out, its failure or the daemon's refusal noted. */
async function inPhase(
  lanes: Lane[],
  what: string,
  work: (lane: Lane) => Promise<void>,
  { prefix, failures, refusals }: { prefix: string; failures: string[]; refusals: ScaleResult['refusals'] },
): Promise<void> {
  const live = lanes.filter((lane) => lane.alive);
  const results = await Promise.allSettled(live.map((lane) => work(lane)));
  results.forEach((result, k) => {
    if (result.status === 'fulfilled') return;
    const lane = live[k];
    const reason = result.reason as Error;
    lane.alive = false;
    lane.job?.kill();
    if (reason instanceof DaemonRefused) refusals.push({ job: reason.record.job, reason: reason.record.reason });
    else failures.push(`${prefix}-${lane.i + 1} ${what}: ${reason.message.split('\n')[0]}`);
  });
}

export async function scaleRun(tool: Tool, ctx: BenchContext, { count, prefix }: { count: number; prefix: string }): Promise<ScaleResult> {
  const lanes: Lane[] = Array.from({ length: count }, (_, i) => ({ i, run: makeRun(ctx.sandbox, `${prefix}-${i + 1}`), alive: true }));
  const failures: string[] = [];
  const refusals: ScaleResult['refusals'] = [];
  const watchers: DirWatch[] = [];
  const jobs: Job[] = [];
  const phase = (what: string, work: (lane: Lane) => Promise<void>): Promise<void> => inPhase(lanes, what, work, { prefix, failures, refusals });
  try {
    for (const lane of lanes) {
      lane.job = tool.start({ jobId: `${prefix}-${lane.i + 1}-a`, workdir: lane.run.workdir, spool: ctx.spool, stamps: lane.run.stamps });
      jobs.push(lane.job);
    }
    const firstSpawn = past(lanes[0].job).spawnedAt;
    await phase('start', async (lane) => {
      const start = await waitForStart(lane.run.stamps, 1, 120_000);
      lane.startupMs = start.at - past(lane.job).spawnedAt;
    });
    await sleep(500);
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.runDir = new DirWatch(tool.runDir(lane.run.workdir), { requireExists: true });
      watchers.push(lane.runDir);
    }
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.signalAt = now();
      process.kill(past(lane.job).pid, 'SIGUSR2');
    }
    await phase('checkpoint', async (lane) => {
      const job = past(lane.job);
      const jobId = job.jobId;
      const okAt = await Promise.race([past(lane.runDir).waitFor('checkpoint_ok', 120_000), refusal(ctx.daemon, 'checkpoint', jobId, 120_000)]);
      const exit = await job.exit(60_000);
      if (exit.code !== 99) throw new Error(`exit ${exit.code} after the checkpoint, expected 99`);
      const requestAt = ctx.spoolWatch.first.get(`${jobId}.checkpoint`);
      const dumpMs = daemonTime(await ctx.daemon.reportFor('checkpoint', jobId), requestAt, okAt);
      lane.checkpointedAt = exit.at;
      const signalAt = past(lane.signalAt);
      lane.reactionMs = requestAt === undefined ? undefined : requestAt - signalAt;
      lane.cycleMs = dumpMs === undefined ? undefined : exit.at - signalAt - dumpMs;
    });
    const allCheckpointedAt = Math.max(...lanes.filter((l) => l.alive).map((l) => past(l.checkpointedAt)));
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.images = new DirWatch(join(tool.runDir(lane.run.workdir), 'checkpoint'), { requireExists: true });
      watchers.push(lane.images);
    }
    for (const lane of lanes.filter((l) => l.alive)) {
      lane.job = tool.start({ jobId: `${prefix}-${lane.i + 1}-b`, workdir: lane.run.workdir, spool: ctx.spool, stamps: lane.run.stamps });
      jobs.push(lane.job);
    }
    const resumeStart = Math.min(...lanes.filter((l) => l.alive).map((l) => past(l.job).spawnedAt));
    await phase('resume', async (lane) => {
      const job = past(lane.job);
      const jobId = job.jobId;
      const resumed = tool.resumed(job, 20);
      resumed.catch(() => undefined);
      const readyAt = await Promise.race([resumed, refusal(ctx.daemon, 'resume', jobId, 120_000)]);
      const requestAt = ctx.spoolWatch.first.get(`${jobId}.resume`);
      const pidfileAt = await past(lane.images).waitFor('pidfile', 1000);
      const restoreMs = daemonTime(await ctx.daemon.reportFor('resume', jobId), requestAt, pidfileAt);
      lane.readyAt = readyAt;
      lane.resumeMs = restoreMs === undefined ? undefined : readyAt - job.spawnedAt - restoreMs;
      lane.program = await restoredProgram(tool, lane.run.workdir);
    });
    const allResumedAt = Math.max(...lanes.filter((l) => l.alive).map((l) => past(l.readyAt)));
    await phase('exit', async (lane) => {
      await signalProgram(past(lane.program));
      const programExit = await waitForProgramExit(lane.run.stamps, 0, 30_000);
      const exit = await past(lane.job).exit(60_000);
      if (exit.code !== tool.expectedExitAfterResume) throw new Error(`exit ${exit.code} after the program ended, expected ${tool.expectedExitAfterResume}`);
      lane.exitAt = exit.at;
      lane.exitMs = exit.at - programExit.at;
    });
    const done = lanes.filter((l) => l.alive);
    const pick = (key: 'startupMs' | 'reactionMs' | 'cycleMs' | 'resumeMs' | 'exitMs'): Summary | undefined => summarize(done.map((l) => l[key]));
    return {
      jobs: count,
      completed: done.length,
      totalMs: Math.max(...done.map((l) => past(l.exitAt))) - firstSpawn,
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
