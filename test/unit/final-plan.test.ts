/**
 * The self-timed final checkpoint's planner (final-plan.ts): memory that grows, a slow first dump,
 * a signal that left less than the estimate. The machine's final timer: test/unit/machine.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BYTES_PER_SEC,
  DUMP_OVERHEAD_MS,
  measuredThroughput,
  planChanged,
  planFinal,
  PLAN_MARGIN_MS,
  shortLeadWarning,
  type Throughput,
} from '../../src/launcher/final-plan.js';

const GB = 1e9;
const WALLTIME_ENDS = 3_600_000;
const ASSUMED: Throughput = { bytesPerSec: DEFAULT_BYTES_PER_SEC, measured: false };

describe('planFinal', () => {
  it('plans at the walltime minus the dump estimate (overhead + memory at the throughput, times the safety) minus the margin', () => {
    const plan = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 2 * GB, throughput: { bytesPerSec: 0.5 * GB, measured: true }, safety: 2 });
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
    expect(slow).toEqual({ bytesPerSec: 25e6, measured: true });
    const measured = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: GB, throughput: slow as Throughput, safety: 2 });
    expect(measured.estimateMs).toBe(2 * (DUMP_OVERHEAD_MS + 40_000));
    expect(measured.at).toBeLessThan(assumed.at);
    expect(planChanged(assumed, measured)).toBe(true);
    // Without a size or a time, nothing is measured.
    expect(measuredThroughput({ frozenMs: 100 })).toBeUndefined();
    expect(measuredThroughput({ bytes: 100 })).toBeUndefined();
    expect(measuredThroughput({ bytes: 3e9 }, 1000)).toEqual({ bytesPerSec: 3e9, measured: true });
  });

  it('a small quick dump is all fixed cost: it measures nothing, the assumed throughput stays', () => {
    // As on the real OAR cluster: a counter's 0.5 MB frozen for 131 ms.
    expect(measuredThroughput({ bytes: 0.5e6, frozenMs: 131 })).toBeUndefined();
    // Slow although small (a slow filesystem): that is measured.
    expect(measuredThroughput({ bytes: 10e6, frozenMs: 20_000 })).toEqual({ bytesPerSec: 0.5e6, measured: true });
  });

  it("warns when the scheduler's signal left less than the dump's estimate, not when it left more", () => {
    const plan = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 4 * GB, throughput: ASSUMED, safety: 2 });
    expect(shortLeadWarning(plan, WALLTIME_ENDS - plan.estimateMs - 1000)).toBeUndefined();
    expect(shortLeadWarning(plan, WALLTIME_ENDS - 5000)).toMatch(/^the scheduler's checkpoint signal came 5 s before the walltime, less than the dump's estimate \(44 s for 4000\.0 MB\)/);
  });
});
