/**
 * When to make the final checkpoint without the scheduler's signal (pure, time given by the
 * caller). Where the job's end is known (OAR's walltime, Slurm's EndTime), ckpt-run does not rely
 * on the user's guess of the signal's lead (oarsub --checkpoint N, sbatch --signal=B:USR2@N):
 * it plans the final checkpoint at the walltime minus an estimate of the dump, from the program
 * tree's memory and the throughput measured for this run's checkpoints (before any, the one this
 * node's daemon measured at its start and says in its heartbeat; without one DEFAULT_BYTES_PER_SEC),
 * times a safety factor, and a margin. The supervisor samples the memory and
 * re-plans as the program grows and after each checkpoint; the machine arms a timer for it.
 */
import { formatMegabytes } from '../base/sizes.js';
import type { ThroughputSource } from '../state/run-state.js';

/**
 * Before this run has a dump of its own to go by. Measured here (README: about 3 s per GB,
 * ~330 MB/s, real CRIU to a local disk); a shared filesystem is slower: taken lower.
 */
export const DEFAULT_BYTES_PER_SEC = 200e6;
/** What a dump costs whatever its size: criu's start, the freeze, the pages' map (the canary: ~0.6 s dumped and restored). */
export const DUMP_OVERHEAD_MS = 2000;
/** --dump-safety: the dump may take this many times the estimate (a busier filesystem, a bigger state than sampled). */
export const DEFAULT_DUMP_SAFETY = 2;
/**
 * After the estimated dump and before the walltime: exit 99 and the job's end, the clocks' skew
 * between the scheduler's start of the job and ckpt-run's, the memory sampled a while ago.
 */
export const PLAN_MARGIN_MS = 10_000;
/** A new plan this much earlier or later than the last one said is said again. */
export const REPLAN_LOGGED_MS = 5000;


export interface Throughput {
  bytesPerSec: number;
  source: ThroughputSource;
  /** From the daemon: its canary's own rate, which bytesPerSec may be below (DAEMON_RATE_CEILING). */
  canaryBytesPerSec?: number;
}

export const ASSUMED_THROUGHPUT: Throughput = { bytesPerSec: DEFAULT_BYTES_PER_SEC, source: 'assumed' };

export interface FinalPlan {
  /** When to checkpoint (ms, the supervisor's clock). */
  at: number;
  /** The dump's estimate, safety factor included. */
  estimateMs: number;
  /** The program tree's memory the estimate is for. */
  bytes: number;
  throughput: Throughput;
  walltimeEndsAt: number;
}

export interface PlanInput {
  walltimeEndsAt: number;
  /** The program tree's memory now. */
  bytes: number;
  throughput: Throughput;
  safety: number;
}

export function planFinal({ walltimeEndsAt, bytes, throughput, safety }: PlanInput): FinalPlan {
  const estimateMs = Math.round(safety * (DUMP_OVERHEAD_MS + (bytes / throughput.bytesPerSec) * 1000));
  return { at: walltimeEndsAt - estimateMs - PLAN_MARGIN_MS, estimateMs, bytes, throughput, walltimeEndsAt };
}

/**
 * The throughput a complete checkpoint shows: its images' size over how long the program was
 * frozen (the daemon's count), else over the time from request to completion. Its fixed cost is
 * in it, so an estimate from it errs on the long side. Undefined when the figures say too little,
 * and for a dump quicker than the fixed cost that is slower than the default: its time is all
 * fixed cost (measured on the real OAR cluster: 0.5 MB in 131 ms, "3.8 MB/s", which would plan a
 * program grown to 1 GB nine minutes early).
 */
export function measuredThroughput(figures: { bytes?: number; frozenMs?: number } | undefined, dumpMs?: number): Throughput | undefined {
  const ms = figures?.frozenMs ?? dumpMs;
  if (!figures?.bytes || !ms || ms <= 0) return undefined;
  const bytesPerSec = (figures.bytes / ms) * 1000;
  if (ms <= DUMP_OVERHEAD_MS && bytesPerSec < DEFAULT_BYTES_PER_SEC) return undefined;
  return { bytesPerSec, source: 'run' };
}

/**
 * The most a daemon's canary rate is taken at: the default's, which is the disk's pace here. The
 * canary (256 MB) measures how fast criu writes into the page cache, not the disk's pace that a
 * dump bigger than the kernel's dirty-page budget (20% of memory) falls to. Measured here with
 * criu 4.2.1 (a filled node process, the local ext4 disk; 2026-12-06): bare criu, a sleep 80 ms
 * for 0.13 MB (all fixed cost); 64 MB in 131-148 ms; 256 MB in 237-245 ms (~1.08 GB/s); 1.6 GB
 * in 1.08-1.26 s (~1.4 GB/s); 3.5 GB in 8.3 s (0.42 GB/s). Through ckpt-daemon on the real OAR
 * cluster: its canary 250.9 MB in 607 ms (413 MB/s), and a job's 5 GB frozen for 26.7 s (187 MB/s).
 * A canary overestimates a big dump's throughput two- to sixfold: taken as is, a big program's
 * plan would come too late. A canary slower than this (a slow or loaded disk) is taken as it is:
 * the job plans earlier.
 */
export const DAEMON_RATE_CEILING = DEFAULT_BYTES_PER_SEC;

/**
 * What the job plans with before a dump of its own measured anything: the rate this node's
 * daemon published (DAEMONRATE, from its heartbeat), at most DAEMON_RATE_CEILING; else the default.
 */
export const throughputBeforeDumps = (daemonRate: { bytesPerSec: number } | undefined): Throughput =>
  daemonRate
    ? { bytesPerSec: Math.min(daemonRate.bytesPerSec, DAEMON_RATE_CEILING), source: 'daemon', canaryBytesPerSec: daemonRate.bytesPerSec }
    : ASSUMED_THROUGHPUT;

/** Whether NEXT differs enough from the plan last said (PREVIOUS) to be said again. */
export const planChanged = (previous: FinalPlan | undefined, next: FinalPlan): boolean =>
  previous === undefined || Math.abs(next.at - previous.at) >= REPLAN_LOGGED_MS || next.throughput.source !== previous.throughput.source;

const clock = (ms: number): string => new Date(ms).toTimeString().slice(0, 8);
const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

/** Where the throughput comes from, in `ckpt-run status`'s words. */
export const SOURCE_WORDS: Record<ThroughputSource, string> = {
  run: 'measured',
  daemon: "measured by this node's daemon",
  assumed: 'assumed',
};

/** The same in the log, with why a job goes by the daemon's canary or the default. */
function rate({ bytesPerSec, source, canaryBytesPerSec }: Throughput): string {
  const why = {
    run: '',
    daemon:
      canaryBytesPerSec !== undefined && canaryBytesPerSec > bytesPerSec
        ? ` (its canary at start went at ${formatMegabytes(canaryBytesPerSec)}/s, taken at ${formatMegabytes(DAEMON_RATE_CEILING)}/s at most: ` +
          "a big dump goes at the disk's pace; this run has measured none yet)"
        : ' (its canary at start; this run has measured none yet)',
    assumed: ' (none measured in this run yet: its dumps so far, if any, were too small and quick to tell)',
  }[source];
  return `${formatMegabytes(bytesPerSec)}/s ${SOURCE_WORDS[source]}${why}`;
}

/**
 * "final checkpoint planned at 01:38:10 (in 84 s), 2.1 GB at 0.9 GB/s measured, dump estimated
 * 6 s (×2), signal lead given: none"; LEAD: what the scheduler tells the job of its signal's lead.
 */
export function describePlan(plan: FinalPlan, now: number, safety: number, lead: string): string {
  const due = plan.at <= now ? 'now (the walltime leaves less than the dump needs)' : `at ${clock(plan.at)} (in ${seconds(plan.at - now)})`;
  return (
    `final checkpoint planned ${due}, ${seconds(plan.walltimeEndsAt - plan.at)} before the walltime: ` +
    `${formatMegabytes(plan.bytes)} at ${rate(plan.throughput)}, dump estimated ${seconds(plan.estimateMs)} (×${safety} safety) ` +
    `+ ${seconds(PLAN_MARGIN_MS)} margin; signal lead given: ${lead}`
  );
}

/** Why the final checkpoint is made now, without the scheduler's signal (the machine logs it). */
export const selfTimedReason = (plan: FinalPlan): string =>
  `no checkpoint signal from the scheduler ${seconds(plan.walltimeEndsAt - plan.at)} before the walltime: ` +
  `checkpointing now, as planned (the dump of ${formatMegabytes(plan.bytes)} is estimated at ${seconds(plan.estimateMs)})`;

/** A warning when the scheduler's signal, at NOW, left less than the dump's estimate; else undefined. */
export function shortLeadWarning(plan: FinalPlan, now: number): string | undefined {
  const leadMs = plan.walltimeEndsAt - now;
  if (leadMs >= plan.estimateMs) return undefined;
  return (
    `the scheduler's checkpoint signal came ${seconds(Math.max(0, leadMs))} before the walltime, less than the dump's estimate ` +
    `(${seconds(plan.estimateMs)} for ${formatMegabytes(plan.bytes)}): ckpt-run checkpoints on its own plan before it; ` +
    `for the signal to cover the dump, give it ${Math.ceil((plan.estimateMs + PLAN_MARGIN_MS) / 1000)} s or more ` +
    `(OAR: oarsub --checkpoint; Slurm: sbatch --signal=B:USR2@)`
  );
}
