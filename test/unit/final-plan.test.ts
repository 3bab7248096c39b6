/**
 * The self-timed final checkpoint's planner (final-plan.ts): memory that grows, a slow first dump,
 * a signal that left less than the estimate; where its throughput comes from (the run's dump, the
 * node's daemon's canary in its heartbeat, the default), on a fake clock (final-timing.ts). The
 * machine's final timer: test/unit/machine.test.ts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FinalTiming } from '../../src/launcher/final-timing.js';
import type { MachineEvent } from '../../src/launcher/machine-state.js';
import { formatHeartbeat, heartbeatDumpRate, heartbeatFeatures, type DumpRate } from '../../src/protocol/heartbeat.js';
import { formatCheckpointStats } from '../../src/protocol/run-dir.js';
import {
  ASSUMED_THROUGHPUT,
  DAEMON_RATE_CEILING,
  DUMP_OVERHEAD_MS,
  measuredThroughput,
  planChanged,
  planFinal,
  PLAN_MARGIN_MS,
  shortLeadWarning,
  throughputBeforeDumps,
  type Throughput,
} from '../../src/launcher/final-plan.js';

const GB = 1e9;
const WALLTIME_ENDS = 3_600_000;
const ASSUMED = ASSUMED_THROUGHPUT;

describe('planFinal', () => {
  it('plans at the walltime minus the dump estimate (overhead + memory at the throughput, times the safety) minus the margin', () => {
    const plan = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 2 * GB, throughput: { bytesPerSec: 0.5 * GB, source: 'run' }, safety: 2 });
    expect(plan.estimateMs).toBe(2 * (DUMP_OVERHEAD_MS + 4000));
    expect(plan.at).toBe(WALLTIME_ENDS - plan.estimateMs - PLAN_MARGIN_MS);
  });

  it('a program that grows moves the plan earlier, and the change is worth saying once it is 5 s or more', () => {
    const small = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 100e6, throughput: ASSUMED, safety: 2 });
    const bit = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 200e6, throughput: ASSUMED, safety: 2 });
    const grown = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 8 * GB, throughput: ASSUMED, safety: 2 });
    expect(grown.at).toBeLessThan(small.at - 60_000);
    expect(planChanged(undefined, small)).toBe(true);
    expect(planChanged(small, bit)).toBe(false);
    expect(planChanged(small, grown)).toBe(true);
  });

  it('a slow first dump: its measured throughput replaces the assumed one and moves the plan earlier', () => {
    const assumed = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: GB, throughput: ASSUMED, safety: 2 });
    // 1 GB frozen for 40 s: 25 MB/s, far below the assumed throughput.
    const slow = measuredThroughput({ bytes: GB, frozenMs: 40_000 });
    expect(slow).toEqual({ bytesPerSec: 25e6, source: 'run' });
    const measured = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: GB, throughput: slow as Throughput, safety: 2 });
    expect(measured.estimateMs).toBe(2 * (DUMP_OVERHEAD_MS + 40_000));
    expect(measured.at).toBeLessThan(assumed.at);
    expect(planChanged(assumed, measured)).toBe(true);
    // Without a size or a time, nothing is measured.
    expect(measuredThroughput({ frozenMs: 100 })).toBeUndefined();
    expect(measuredThroughput({ bytes: 100 })).toBeUndefined();
    expect(measuredThroughput({ bytes: 3e9 }, 1000)).toEqual({ bytesPerSec: 3e9, source: 'run' });
  });

  it('a small quick dump is all fixed cost: it measures nothing, the assumed throughput stays', () => {
    // As on the real OAR cluster: a counter's 0.5 MB frozen for 131 ms.
    expect(measuredThroughput({ bytes: 0.5e6, frozenMs: 131 })).toBeUndefined();
    // Slow although small (a slow filesystem): that is measured.
    expect(measuredThroughput({ bytes: 10e6, frozenMs: 20_000 })).toEqual({ bytesPerSec: 0.5e6, source: 'run' });
  });

  it("warns when the scheduler's signal left less than the dump's estimate, not when it left more", () => {
    const plan = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 4 * GB, throughput: ASSUMED, safety: 2 });
    expect(shortLeadWarning(plan, WALLTIME_ENDS - plan.estimateMs - 1000)).toBeUndefined();
    expect(shortLeadWarning(plan, WALLTIME_ENDS - 5000)).toMatch(/^the scheduler's checkpoint signal came 5 s before the walltime, less than the dump's estimate \(44 s for 4000\.0 MB\)/);
  });
});

describe("the daemon's dump rate in its heartbeat", () => {
  it('is said on a line of its own that jobs read back; a heartbeat without it (an older daemon) gives none', () => {
    const rate: DumpRate = { bytesPerSec: 812_345_678, canaryBytes: 256_000_000, canaryMs: 315 };
    const text = formatHeartbeat(1234, rate);
    expect(text).toBe('1234\nfeatures: leave-running job-lease\ndump-rate: 812345678 bytes/s (256000000 bytes in 315 ms)\n');
    expect(heartbeatDumpRate(text)).toEqual(rate);
    expect(heartbeatFeatures(text)).toEqual(['leave-running', 'job-lease']);
    expect(heartbeatDumpRate(formatHeartbeat(1234))).toBeUndefined();
    expect(heartbeatDumpRate('1234\nfeatures: leave-running\ndump-rate: 0 bytes/s (0 bytes in 0 ms)\n')).toBeUndefined();
    expect(heartbeatDumpRate('1234\ndump-rate: fast\n')).toBeUndefined();
  });

  it("is the job's throughput before a dump of its own, at most the ceiling (the canary's page-cache pace); else the default", () => {
    expect(throughputBeforeDumps({ bytesPerSec: 1.5e8 })).toEqual({ bytesPerSec: 1.5e8, source: 'daemon', canaryBytesPerSec: 1.5e8 });
    // This node's daemon: its canary at 413 MB/s, where a job's 5 GB dump went at 187 MB/s.
    expect(throughputBeforeDumps({ bytesPerSec: 413e6 })).toEqual({ bytesPerSec: DAEMON_RATE_CEILING, source: 'daemon', canaryBytesPerSec: 413e6 });
    expect(throughputBeforeDumps(undefined)).toEqual(ASSUMED_THROUGHPUT);
  });
});

describe('FinalTiming on a fake clock: where the throughput comes from', () => {
  const START = Date.UTC(2026, 11, 6, 12, 0, 0);
  const WALLTIME = START + 600_000;
  /** A slow node's canary (below the ceiling): taken as it is. */
  const DAEMON: DumpRate = { bytesPerSec: 150e6, canaryBytes: 256e6, canaryMs: 1707 };
  let dir: string;

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START);
    dir = mkdtempSync(join(tmpdir(), 'ckpt-final-timing-'));
  });
  afterEach(() => vi.useRealTimers());

  /** A FinalTiming for a program of MEMORY() bytes, with the daemon's rate DAEMONRATE(); what it logs and posts. */
  function timing(options: { memory: () => number; daemonRate: () => DumpRate | undefined; stats?: string }) {
    const logs: string[] = [];
    const plans: MachineEvent[] = [];
    const statsPath = join(dir, 'checkpoint_stats');
    if (options.stats) writeFileSync(statsPath, options.stats);
    const final = new FinalTiming({
      walltimeEndsAt: WALLTIME,
      safety: 2,
      statsPath,
      daemonRate: options.daemonRate,
      memoryOf: () => options.memory(),
      logger: { log: (_level, message) => logs.push(message) },
      post: (event) => plans.push(event),
      record: () => undefined,
    });
    final.watch(42);
    return { final, logs, plans };
  }
  const estimate = (bytes: number, bytesPerSec: number): number => Math.round(2 * (DUMP_OVERHEAD_MS + (bytes / bytesPerSec) * 1000));

  it("before a dump of its own, the job plans with the rate of the node's daemon and says so", () => {
    const { final, logs, plans } = timing({ memory: () => 2.7e9, daemonRate: () => DAEMON });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^final checkpoint planned at \d\d:\d\d:\d\d \(in 550 s\), 50 s before the walltime: 2700\.0 MB at 150\.0 MB\/s measured by this node's daemon \(its canary at start; this run has measured none yet\), dump estimated 40 s/);
    expect(plans).toEqual([expect.objectContaining({ type: 'finalPlanned', at: WALLTIME - estimate(2.7e9, 150e6) - PLAN_MARGIN_MS })]);
    final.stop();
  });

  it("a canary faster than the ceiling: the ceiling, and the log says both", () => {
    const { final, logs } = timing({ memory: () => 5e9, daemonRate: () => ({ bytesPerSec: 413e6, canaryBytes: 250.9e6, canaryMs: 607 }) });
    expect(logs[0]).toMatch(
      /5000\.0 MB at 200\.0 MB\/s measured by this node's daemon \(its canary at start went at 413\.0 MB\/s, taken at 200\.0 MB\/s at most: a big dump goes at the disk's pace; this run has measured none yet\), dump estimated 54 s/,
    );
    final.stop();
  });

  it('without a rate from the daemon, the default (said as assumed); a daemon that publishes one later is taken at the next sample', () => {
    let rate: DumpRate | undefined;
    const { final, logs, plans } = timing({ memory: () => 4e9, daemonRate: () => rate });
    expect(logs[0]).toMatch(/4000\.0 MB at 200\.0 MB\/s assumed/);
    rate = DAEMON;
    vi.advanceTimersByTime(5000);
    expect(logs).toHaveLength(2);
    expect(logs[1]).toMatch(/^new plan: final checkpoint planned .* 4000\.0 MB at 150\.0 MB\/s measured by this node's daemon/);
    expect(plans.map((event) => event.type === 'finalPlanned' && event.at)).toEqual([
      WALLTIME - estimate(4e9, 200e6) - PLAN_MARGIN_MS,
      WALLTIME - estimate(4e9, 150e6) - PLAN_MARGIN_MS,
    ]);
    final.stop();
  });

  it("the program grows: re-planned at the daemon's rate as it grows; a move under 5 s is acted on, not said", () => {
    let memory = 100e6;
    const { final, logs, plans } = timing({ memory: () => memory, daemonRate: () => DAEMON });
    // 400 MB more at 150 MB/s: a dump 2.7 s longer (×2 safety: the plan 5.3 s earlier, said); then 0.3 MB more: 4 ms, acted on, not said.
    memory = 500e6;
    vi.advanceTimersByTime(5000);
    memory = 500.3e6;
    vi.advanceTimersByTime(5000);
    expect(logs).toHaveLength(2);
    expect(plans.map((event) => event.type === 'finalPlanned' && event.at)).toEqual(
      [100e6, 500e6, 500.3e6].map((bytes) => WALLTIME - estimate(bytes, 150e6) - PLAN_MARGIN_MS),
    );
    memory = 5e9;
    vi.advanceTimersByTime(5000);
    expect(logs).toHaveLength(3);
    expect(logs[2]).toMatch(/^new plan: .* 5000\.0 MB at 150\.0 MB\/s measured by this node's daemon \(.*\), dump estimated 71 s/);
    final.stop();
  });

  it("the run's own dump replaces the daemon's rate, which is not read again", () => {
    const daemonRate = vi.fn(() => DAEMON);
    const { final, logs } = timing({ memory: () => 3e9, daemonRate });
    // 3 GB frozen for 40 s: 75 MB/s, slower than the daemon's canary said.
    final.measured({ bytes: 3e9, frozenMs: 40_000 });
    expect(logs[1]).toMatch(/^new plan: .* 3000\.0 MB at 75\.0 MB\/s measured, dump estimated 84 s/);
    const reads = daemonRate.mock.calls.length;
    vi.advanceTimersByTime(20_000);
    expect(daemonRate.mock.calls.length).toBe(reads);
    expect(logs).toHaveLength(2);
    final.stop();
  });

  it("a resumed job plans with its run's last checkpoint, not the daemon's rate", () => {
    const stats = formatCheckpointStats({ bytes: 3e9, frozenMs: 6000, leftRunning: false });
    const { final, logs } = timing({ memory: () => 3e9, daemonRate: () => DAEMON, stats });
    expect(logs[0]).toMatch(/3000\.0 MB at 500\.0 MB\/s measured, dump estimated 16 s/);
    final.stop();
  });
});
