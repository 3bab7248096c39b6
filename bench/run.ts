#!/usr/bin/env node
/**
 * `npm run bench`: ckpt-run against the bash job script it replaces (the baseline,
 * ../shared/baseline/seed-job.sh, run in place), on the same program and the same daemon,
 * alternating A/B over several rounds; then an idle hour (scaled), then a 50-job scale run,
 * then the program's CPU share under contention, plainly and under ckpt-run.
 *
 *   node build/bench/run.js [--rounds 5] [--idle-seconds 60] [--scale-jobs 50] [--no-scale-baseline]
 *                      [--share-seconds 5] [--daemon auto|restart|fake|ckpt-daemon] [--json FILE] [--keep]
 *                      [--restore-mib 2048] [--periodic-mib 1024] [--kept-mib 1024]
 * As root with criu and userfaultfd, it also restores one image fully and lazily, side by side,
 * and times the periodic checkpoints (--interval) of a 1 GiB program, and what keeping a 1 GiB
 * file changed 1 % between them costs.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { now } from './clock.js';
import { chooseDaemon, DAEMON_DESCRIPTIONS, DaemonRefused, startDaemon } from './daemon.js';
import { checkpointCycle } from './figures/cycle.js';
import { idleRun } from './figures/idle.js';
import { keptFiles, keptFilesLines } from './figures/kept-files.js';
import { periodicCheckpoints, periodicLines } from './figures/periodic.js';
import { restoreModes, restoreModesLines } from './figures/restore-modes.js';
import { resumeAndExit } from './figures/resume.js';
import { scaleRun } from './figures/scale.js';
import { shareRun, type ShareResult } from './figures/share.js';
import { BASELINE, baseline, baselinePresent, CKPT_RUN, ckptRun, killAllStarted, killStrays, makeRun, ROOT, useCkptRunBin, writeOarstatStandIn } from './jobs.js';
import { loadAverage, machineInfo, type MachineInfo } from './machine.js';
import { buildReport, type BenchOptions, type Refusal, type SampleKey, type ToolSamples } from './report.js';
import type { CycleResult } from './figures/cycle.js';
import type { IdleResult } from './figures/idle.js';
import type { ResumeResult } from './figures/resume.js';
import type { ScaleResult } from './figures/scale.js';
import type { BenchContext, Run, Tool } from './jobs.js';
import { DirWatch } from './watch.js';

const USAGE = `usage: node build/bench/run.js [options]
  --rounds N            A/B rounds of start → checkpoint → resume → exit (default 5)
  --idle-seconds S      length of the idle-cost window (default 60)
  --idle-warmup S       seconds after the program started before that window opens (default 20)
  --scale-jobs N        concurrent jobs of the scale run, 0 to skip (default 50)
  --no-scale-baseline   scale run for ckpt-run only (the baseline's takes ~40 s: 30 s + 5 s sleeps)
  --no-baseline         measure ckpt-run alone (e.g. to compare builds quickly with --ckpt-run-bin)
  --share-seconds S     each window of the CPU-share run (--rounds A/B windows), 0 to skip (default 5)
  --daemon KIND         auto (default), restart, fake or ckpt-daemon (see bench/daemon.ts)
  --json FILE           also write every figure and sample as JSON
  --keep                keep the sandbox directory (job logs, stamps) for inspection
  --ckpt-run-bin FILE   measure this ckpt-run entry point instead of bin/ckpt-run (a candidate fix)
  --restore-mib N       full vs lazy restore of one N MiB image, --rounds times each (root, criu,
                        userfaultfd; 0 to skip; default 2048)
  --periodic-mib N      periodic checkpoints (--interval: frozen time, dump time, size) of an N MiB
                        program, --rounds times (root, criu; 0 to skip; default 1024)
  --kept-mib N          the content of an N MiB file held open, 1 % changed between periodic
                        checkpoints, kept with each (root, criu; 0 to skip; default 1024)`;

function options(): BenchOptions {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      'idle-seconds': { type: 'string', default: '60' },
      'idle-warmup': { type: 'string', default: '20' },
      'scale-jobs': { type: 'string', default: '50' },
      'no-scale-baseline': { type: 'boolean', default: false },
      'no-baseline': { type: 'boolean', default: false },
      'share-seconds': { type: 'string', default: '5' },
      daemon: { type: 'string', default: 'auto' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'ckpt-run-bin': { type: 'string' },
      'restore-mib': { type: 'string', default: '2048' },
      'periodic-mib': { type: 'string', default: '1024' },
      'kept-mib': { type: 'string', default: '1024' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: 'rounds' | 'idle-seconds' | 'idle-warmup' | 'scale-jobs' | 'share-seconds' | 'restore-mib' | 'periodic-mib' | 'kept-mib', min: number): number => {
    const value = Number(values[name]);
    if (!Number.isFinite(value) || value < min) {
      console.error(`bench: --${name} must be a number ≥ ${min}\n${USAGE}`);
      process.exit(2);
    }
    return value;
  };
  return {
    rounds: Math.floor(number('rounds', 1)),
    idleSeconds: number('idle-seconds', 1),
    idleWarmup: number('idle-warmup', 0),
    scaleJobs: Math.floor(number('scale-jobs', 0)),
    scaleBaseline: !values['no-scale-baseline'],
    baseline: !values['no-baseline'],
    daemon: values.daemon,
    json: values.json,
    keep: values.keep,
    ckptRunBin: values['ckpt-run-bin'] ? resolve(values['ckpt-run-bin']) : undefined,
    shareSeconds: number('share-seconds', 0),
    restoreMib: Math.floor(number('restore-mib', 0)),
    periodicMib: Math.floor(number('periodic-mib', 0)),
    keptMib: Math.floor(number('kept-mib', 0)),
  };
}

const progress = (message: string): boolean => process.stderr.write(`bench: ${message}\n`);

/** What the phases collect: the samples of each tool, the errors, the daemon's refusals. */
class Collected {
  readonly samples: Record<string, ToolSamples> = {};
  readonly errors: string[] = [];
  readonly refusals: Refusal[] = [];

  constructor(tools: Tool[]) {
    for (const tool of tools) {
      this.samples[tool.name] = { startup: [], reaction: [], cycle: [], okToExit: [], dump: [], dumpReported: [], resume: [], restore: [], restoreReported: [], exit: [], rss: [], exitCodes: [] };
    }
  }

  /** A handler for the failure of WHAT: noted, said, and the bench goes on. */
  fail(what: string): (error: unknown) => void {
    return (error) => {
      const message = (error as Error).message;
      this.errors.push(`${what}: ${message.split('\n')[0]}`);
      progress(`ERROR ${what}: ${message}`);
    };
  }

  keep(tool: Tool, result: Partial<CycleResult & ResumeResult>): void {
    const s = this.samples[tool.name];
    const take = (fields: Array<[SampleKey, keyof CycleResult | keyof ResumeResult]>): void => {
      for (const [sample, field] of fields) s[sample].push(result[field] as number | undefined);
    };
    if (result.startupMs !== undefined) take(CYCLE_FIELDS);
    if (result.resumeMs !== undefined) {
      take(RESUME_FIELDS);
      s.exitCodes.push(result.exitCode);
    }
    if (result.peakRssMiB !== undefined) s.rss.push(result.peakRssMiB);
  }
}

/** Which sample each field of a figure's result goes to. */
const CYCLE_FIELDS: Array<[SampleKey, keyof CycleResult]> = [
  ['startup', 'startupMs'], ['reaction', 'reactionMs'], ['cycle', 'cycleMs'], ['okToExit', 'okToExitMs'], ['dump', 'dumpMs'], ['dumpReported', 'dumpReportedMs'],
];
const RESUME_FIELDS: Array<[SampleKey, keyof ResumeResult]> = [
  ['resume', 'resumeMs'], ['restore', 'restoreMs'], ['restoreReported', 'restoreReportedMs'], ['exit', 'exitMs'],
];

/**
 * The A/B rounds: start → checkpoint (a refused round is tried again, up to 3 times) → resume →
 * exit. Returns the baseline's resumes, still running (30 s + 5 s of sleeps each).
 */
async function runRounds(opts: BenchOptions, tools: Tool[], ctx: BenchContext, got: Collected): Promise<Array<Promise<void>>> {
  const baselineResumes: Array<Promise<void>> = [];
  for (let round = 1; round <= opts.rounds; round += 1) {
    const order = round % 2 === 1 ? tools : [...tools].reverse();
    for (const tool of order) {
      const tag = tool === ckptRun ? 'ck' : 'bl';
      let run: Run | undefined;
      let cycle: CycleResult | undefined;
      for (let attempt = 1; attempt <= 3 && !cycle; attempt += 1) {
        const name = `${tag}-r${round}${attempt === 1 ? '' : `-try${attempt}`}`;
        run = makeRun(ctx.sandbox, name);
        try {
          cycle = await checkpointCycle(tool, ctx, run, `${name}-a`);
          got.keep(tool, cycle);
        } catch (error) {
          if (error instanceof DaemonRefused) {
            got.refusals.push({ tool: tool.name, job: error.record.job, reason: error.record.reason });
            progress(`${tool.name} round ${round}: ${error.message}; ${attempt < 3 ? 'trying the round again' : 'giving up this round'}`);
            if (attempt < 3) continue;
          }
          got.fail(`${tool.name} round ${round} checkpoint`)(error);
          break;
        }
      }
      if (!cycle || !run) continue;
      const tagged = run.name;
      const resume = resumeAndExit(tool, ctx, run, `${tagged}-b`).then((result) => got.keep(tool, result), got.fail(`${tool.name} round ${round} resume`));
      if (tool === ckptRun) await resume;
      else baselineResumes.push(resume);
    }
    progress(`round ${round}/${opts.rounds} done`);
  }
  return baselineResumes;
}

/** The idle window, all tools side by side; their peak RSS joins the samples. */
async function runIdle(opts: BenchOptions, tools: Tool[], ctx: BenchContext, got: Collected): Promise<Record<string, IdleResult>> {
  progress(`idle run: ${opts.idleWarmup} s warm-up + ${opts.idleSeconds} s window, ${tools.map((t) => t.name).join(' and ')} side by side`);
  const exitWaitMs = 3000;
  try {
    const idle = await idleRun(
      tools.map((tool) => ({ tool, run: makeRun(ctx.sandbox, `${tool === ckptRun ? 'ck' : 'bl'}-idle`), jobId: `${tool === ckptRun ? 'ck' : 'bl'}-idle` })),
      ctx,
      { seconds: opts.idleSeconds, warmupSeconds: opts.idleWarmup, exitWaitMs },
    );
    for (const tool of tools) if (idle[tool.name]?.peakRssMiB !== undefined) got.samples[tool.name].rss.push(idle[tool.name].peakRssMiB);
    return idle;
  } catch (error) {
    got.fail('idle run')(error);
    return {};
  }
}

/** N concurrent jobs of each tool on the one daemon. */
async function runScale(opts: BenchOptions, tools: Tool[], ctx: BenchContext, got: Collected): Promise<Record<string, ScaleResult>> {
  const scale: Record<string, ScaleResult> = {};
  if (opts.scaleJobs === 0) return scale;
  for (const tool of tools) {
    if (tool === baseline && !opts.scaleBaseline) continue;
    progress(`scale run: ${opts.scaleJobs} concurrent ${tool.name} jobs, one daemon`);
    try {
      scale[tool.name] = await scaleRun(tool, ctx, { count: opts.scaleJobs, prefix: `${tool === ckptRun ? 'ck' : 'bl'}-scale` });
    } catch (error) {
      got.fail(`${tool.name} scale run`)(error);
    }
  }
  return scale;
}

/** The program's CPU share against another session's busy loops, one loop per CPU on either side. */
async function runShare(opts: BenchOptions, ctx: BenchContext, machine: MachineInfo, got: Collected): Promise<ShareResult | undefined> {
  if (opts.shareSeconds === 0) return undefined;
  progress(`CPU share: the program against another session's busy loops, ${opts.rounds} A/B windows of ${opts.shareSeconds} s, plainly and under ckpt-run`);
  try {
    return await shareRun(ctx, { rounds: opts.rounds, seconds: opts.shareSeconds, width: machine.nproc });
  } catch (error) {
    got.fail('CPU share run')(error);
    return undefined;
  }
}

/**
 * A figure of the product's own CriuEngine, no daemon (full vs lazy restore, periodic
 * checkpoints): run once the daemon and the jobs are stopped, so that they neither slow these
 * dumps and restores nor are slowed by them. MIB 0 (its option's value) skips it.
 */
async function runCriuFigure<T>(what: string, option: string, mib: number, got: Collected, measure: () => Promise<T | { skipped: string }>): Promise<T | { skipped: string }> {
  if (mib === 0) return { skipped: `${option} 0` };
  try {
    return await measure();
  } catch (error) {
    got.fail(what)(error);
    return { skipped: `failed: ${(error as Error).message.split('\n')[0]}` };
  }
}

async function main(): Promise<void> {
  const opts = options();
  const began = now();
  const machine = machineInfo();
  if (opts.ckptRunBin) useCkptRunBin(opts.ckptRunBin);
  const haveBaseline = opts.baseline && baselinePresent();
  const baselineShown = relative(ROOT, BASELINE);
  if (opts.baseline && !haveBaseline) {
    progress(`baseline ${baselineShown} NOT FOUND (looked for ${resolve(BASELINE)}): measuring ckpt-run alone, baseline columns stay empty`);
  }
  const tools = haveBaseline ? [ckptRun, baseline] : [ckptRun];

  const sandbox = mkdtempSync(join(tmpdir(), 'ckpt-bench-'));
  const spool = join(sandbox, 'spool');
  mkdirSync(spool);
  chmodSync(spool, 0o1777);
  mkdirSync(join(sandbox, 'stamps'));
  writeOarstatStandIn(join(sandbox, 'bin'));

  const choice = chooseDaemon(opts.daemon, ROOT);
  const daemon = await startDaemon(choice.kind, ROOT, spool, join(sandbox, 'daemon.log'));
  const spoolWatch = new DirWatch(spool);
  const ctx: BenchContext = { sandbox, spool, spoolWatch, daemon };
  const cleanup = (): Promise<void> => {
    killAllStarted();
    killStrays(sandbox);
    return daemon.stop();
  };
  process.once('SIGINT', () => {
    cleanup().finally(() => process.exit(130));
  });

  const got = new Collected(tools);
  progress(`daemon: ${choice.kind} (${choice.why}); sandbox ${sandbox}`);
  progress(
    haveBaseline
      ? `${opts.rounds} A/B rounds; the baseline's resumes (30 s + 5 s of sleeps each) run in the background, overlapping the later rounds and the idle run`
      : `${opts.rounds} rounds of ckpt-run alone`,
  );
  const baselineResumes = await runRounds(opts, tools, ctx, got);
  const idle = await runIdle(opts, tools, ctx, got);
  if (baselineResumes.length) progress('waiting for the baseline resumes to finish');
  await Promise.all(baselineResumes);
  const scale = await runScale(opts, tools, ctx, got);
  const share = await runShare(opts, ctx, machine, got);
  await cleanup();
  spoolWatch.close();
  const restore = await runCriuFigure('restore modes', '--restore-mib', opts.restoreMib, got, () => restoreModes({ mib: opts.restoreMib, rounds: opts.rounds, progress }));
  const periodic = await runCriuFigure('periodic checkpoints', '--periodic-mib', opts.periodicMib, got, () => periodicCheckpoints({ mib: opts.periodicMib, rounds: opts.rounds, progress }));
  const kept = await runCriuFigure('kept files', '--kept-mib', opts.keptMib, got, () => keptFiles({ mib: opts.keptMib, rounds: opts.rounds, progress }));

  machine.loadavgAtEnd = loadAverage();
  const { samples, refusals, errors } = got;
  const report = buildReport({ opts, machine, choice, haveBaseline, baselineShown, tools, samples, idle, scale, share, refusals, errors, elapsedMs: now() - began });
  console.log(report.lines.join('\n'));
  console.log(restoreModesLines(restore).join('\n'));
  console.log(periodicLines(periodic).join('\n'));
  console.log(keptFilesLines(kept).join('\n'));

  if (opts.json) {
    writeFileSync(
      opts.json,
      `${JSON.stringify({ machine, daemon: { kind: choice.kind, why: choice.why, description: DAEMON_DESCRIPTIONS[choice.kind] }, ckptRun: CKPT_RUN, baseline: haveBaseline ? baselineShown : null, options: opts, figures: report.rows.map(({ label, unit, ckpt, base, ratio: r, target }) => ({ label, unit, ckptRun: ckpt ?? null, baseline: base ?? null, ratio: r ?? null, target: target ?? null })), samples, idle, scale, share: share ?? null, refusals: report.refusals, notes: report.notes, restore, periodic, kept, errors, durationMs: now() - began }, null, 2)}\n`,
    );
    progress(`JSON written to ${opts.json}`);
  }
  if (!opts.keep) rmSync(sandbox, { recursive: true, force: true });
  else progress(`sandbox kept: ${sandbox}`);
  // Pending safety timers (bounded waits that were not needed) must not keep the bench alive.
  process.exit(errors.length ? 1 : 0);
}

main().catch((error) => {
  killAllStarted();
  console.error(`bench: ${error.stack}`);
  process.exit(1);
});
