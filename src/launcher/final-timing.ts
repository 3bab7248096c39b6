/**
 * The I/O side of the self-timed final checkpoint (the decisions are final-plan.ts's): samples
 * the program tree's memory while it runs, keeps the throughput of this run's last checkpoint
 * (before any, the one this node's daemon publishes in its heartbeat), and tells the machine each new plan (a finalPlanned event, for its final timer). Says the plan
 * when it is first made and each time it moves, and records it for `ckpt-run status`.
 */
import type { Logger } from '../log/logger.js';
import { readOrEmpty } from '../proc/processes.js';
import { parseCheckpointStats } from '../protocol/run-dir.js';
import type { DumpRate } from '../protocol/heartbeat.js';
import {
  describePlan,
  measuredThroughput,
  planChanged,
  planFinal,
  selfTimedReason,
  shortLeadWarning,
  throughputBeforeDumps,
  type FinalPlan,
  type Throughput,
} from './final-plan.js';
import type { CheckpointFigures, MachineEvent } from './machine-state.js';

/** How often the tree's memory is sampled: a program that grows is planned for as it grows. */
export const SAMPLE_MS = 5000;

/** What the job is told of the lead of the scheduler's signal: neither OAR nor Slurm tells it. */
const LEAD_GIVEN = 'none known to the job (the scheduler does not tell it)';

export interface FinalTimingOptions {
  /** When the job ends, where known at start (OAR, --walltime). */
  walltimeEndsAt?: number;
  /** Asks the scheduler when the job ends, where it must be asked (Slurm: scontrol show job). */
  walltimeEnd?: () => Promise<number | undefined>;
  /** --dump-safety. */
  safety: number;
  /** The run's checkpoint_stats file: the last checkpoint's throughput, for a resumed job. */
  statsPath: string;
  /** The dump rate this node's daemon says it measured (its heartbeat), read while the run has none of its own. */
  daemonRate: () => DumpRate | undefined;
  /** The memory of the program's tree rooted at PID (proc's treeRssBytes). */
  memoryOf: (pid: number) => number;
  logger: Logger;
  post: (event: MachineEvent) => void;
  /** Keeps the plan said last in the job's record. */
  record: (plan: FinalPlan) => void;
}

export class FinalTiming {
  private walltimeEndsAt?: number;
  private throughput: Throughput;
  private pid?: number;
  /** The plan said last (log, record, the lead's warning). */
  private plan?: FinalPlan;
  /** When the machine's final timer was last set for. */
  private armedAt?: number;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private leadWarned = false;

  constructor(private readonly options: FinalTimingOptions) {
    this.walltimeEndsAt = options.walltimeEndsAt;
    const stats = parseCheckpointStats(readOrEmpty(options.statsPath) || undefined);
    this.throughput = measuredThroughput(stats) ?? throughputBeforeDumps(options.daemonRate());
    if (this.walltimeEndsAt === undefined && options.walltimeEnd) {
      void options.walltimeEnd().then(
        (endsAt) => {
          this.walltimeEndsAt = endsAt;
          if (endsAt === undefined) options.logger.log('info', 'the scheduler gives no end time for this job: the final checkpoint waits for its signal');
          this.sample();
        },
        () => undefined,
      );
    }
  }

  /** The program runs as PID (spawned or restored): sample it from now on. */
  watch(pid: number): void {
    this.pid = pid;
    this.sample();
  }

  /** A checkpoint completed with FIGURES: its throughput is this run's from now on. */
  measured(figures: CheckpointFigures | undefined): void {
    const throughput = measuredThroughput(figures);
    if (!throughput) return;
    this.throughput = throughput;
    this.sample();
  }

  /** The scheduler's checkpoint signal came at NOW: a warning when it left less than the dump's estimate (once). */
  signalCame(now: number): string | undefined {
    if (!this.plan || this.leadWarned) return undefined;
    this.leadWarned = true;
    return shortLeadWarning(this.plan, now);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private sample(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.pid === undefined || this.walltimeEndsAt === undefined) return;
    const { safety, logger, post, record, daemonRate, memoryOf } = this.options;
    // A daemon (re)started since the last sample may have measured a rate, or another one.
    if (this.throughput.source !== 'run') this.throughput = throughputBeforeDumps(daemonRate());
    const bytes = memoryOf(this.pid);
    // A tree that has just gone (or is frozen by a dump) reads as nothing: no plan from that.
    if (bytes > 0) {
      const next = planFinal({ walltimeEndsAt: this.walltimeEndsAt, bytes, throughput: this.throughput, safety });
      if (planChanged(this.plan, next)) {
        const now = Date.now();
        logger.log('info', `${this.plan ? 'new plan: ' : ''}${describePlan(next, now, safety, LEAD_GIVEN)}`);
        this.plan = next;
        record(next);
      }
      // The machine acts on every move, the log says those of 5 s or more: a program that grew
      // by less between two samples (on the real OAR cluster, 5 GB planned as 4.1 GB) is planned for.
      if (next.at !== this.armedAt) {
        this.armedAt = next.at;
        post({ type: 'finalPlanned', at: next.at, walltimeEndsAt: next.walltimeEndsAt, why: selfTimedReason(next) });
      }
    }
    this.timer = setTimeout(() => this.sample(), SAMPLE_MS);
  }
}
