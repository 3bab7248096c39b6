/**
 * The self-timed final checkpoint on a fake clock: the planner (final-plan.ts) and the machine's
 * final timer (machine.ts): memory that grows, a slow first dump, a signal before the plan.
 */
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import {
  DEFAULT_BYTES_PER_SEC,
  DUMP_OVERHEAD_MS,
  measuredThroughput,
  planChanged,
  planFinal,
  PLAN_MARGIN_MS,
  selfTimedReason,
  shortLeadWarning,
  type Throughput,
} from '../../src/launcher/final-plan.js';
import { initialState, step, type MachineAction, type MachineConfig, type MachineEvent, type MachineState } from '../../src/launcher/machine.js';

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
    expect(measuredThroughput({ bytes: 100 }, 50)).toEqual({ bytesPerSec: 2000, measured: true });
  });

  it("warns when the scheduler's signal left less than the dump's estimate, not when it left more", () => {
    const plan = planFinal({ walltimeEndsAt: WALLTIME_ENDS, bytes: 4 * GB, throughput: ASSUMED, safety: 2 });
    expect(shortLeadWarning(plan, WALLTIME_ENDS - plan.estimateMs - 1000)).toBeUndefined();
    expect(shortLeadWarning(plan, WALLTIME_ENDS - 5000)).toMatch(/^the scheduler's checkpoint signal came 5 s before the walltime, less than the dump's estimate \(44 s for 4000\.0 MB\)/);
  });
});

const CONFIG: MachineConfig = { dumpTimeoutMs: 300_000, resumeTimeoutMs: 600_000, minRuntimeMs: 0, restarts: 0, maxRestarts: 100 };

function drive(config: Partial<MachineConfig>, events: Array<[number, MachineEvent]>) {
  let state: MachineState = initialState({ ...CONFIG, ...config }, 0);
  const actions: MachineAction[] = [];
  for (const [now, event] of events) {
    const next = step(state, event, now);
    state = next.state;
    actions.push(...next.actions);
  }
  return { state, actions, of: (type: MachineAction['type']) => actions.filter((a) => a.type === type) };
}

const running: Array<[number, MachineEvent]> = [
  [0, { type: 'start', mode: 'fresh' }],
  [5, { type: 'spawned', pid: 42 }],
];

describe('the machine and the plan', () => {
  const plan = planFinal({ walltimeEndsAt: 600_000, bytes: GB, throughput: ASSUMED, safety: 2 });
  const planned: MachineEvent = { type: 'finalPlanned', at: plan.at, walltimeEndsAt: plan.walltimeEndsAt, why: selfTimedReason(plan) };

  it('arms the final timer for the plan, re-arms it for a new one, and checkpoints when it fires with no signal; exit 99 as for the signal', () => {
    const later = { ...planned, at: plan.at - 30_000 };
    const run = drive({}, [...running, [1000, planned], [2000, later], [later.at, { type: 'timer', name: 'final' }], [later.at + 500, { type: 'programGone' }], [later.at + 900, { type: 'checkpointOk' }]]);
    expect(run.of('setTimer').filter((a) => a.type === 'setTimer' && a.name === 'final')).toEqual([
      { type: 'setTimer', name: 'final', ms: plan.at - 1000 },
      { type: 'setTimer', name: 'final', ms: later.at - 2000 },
    ]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 42, answerBy: expect.any(Number), leaveRunning: false }]);
    expect(run.of('log')).toContainEqual({ type: 'log', level: 'info', message: expect.stringMatching(/^no checkpoint signal from the scheduler \d+ s before the walltime: checkpointing now, as planned/) });
    expect(run.of('exit')).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
    // The dump's deadline knows the walltime the plan brought (Slurm learns it after the start).
    expect(run.of('requestCheckpoint')[0]).toMatchObject({ answerBy: 600_000 - 5000 });
  });

  it('a signal before the plan is served as today; the plan then changes nothing and its timer finds the checkpoint under way', () => {
    const run = drive({}, [
      ...running,
      [1000, planned],
      [plan.at - 60_000, { type: 'checkpointSignal' }],
      [plan.at - 59_000, planned],
      [plan.at, { type: 'timer', name: 'final' }],
    ]);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.of('setTimer').filter((a) => a.type === 'setTimer' && a.name === 'final')).toHaveLength(1);
    expect(run.of('log')).toContainEqual({ type: 'log', level: 'info', message: 'checkpoint signal ignored: a checkpoint is already in progress' });
  });

  it('a plan due during a periodic checkpoint: the final one follows it', () => {
    const run = drive({ intervalMs: 60_000 }, [
      ...running,
      [1000, planned],
      [60_005, { type: 'timer', name: 'interval', periodic: { ok: true } }],
      [60_100, { type: 'timer', name: 'final' }],
      [61_000, { type: 'checkpointOk', figures: { bytes: GB, frozenMs: 900 } }],
    ]);
    expect(run.of('requestCheckpoint').map((a) => a.type === 'requestCheckpoint' && a.leaveRunning)).toEqual([true, false]);
  });

  it('a plan due before the program runs is served as soon as it does (a resume)', () => {
    const run = drive({}, [
      [0, { type: 'start', mode: 'resume' }],
      [10, { ...planned, at: 0 }],
      [10, { type: 'timer', name: 'final' }],
      [2000, { type: 'restored', pid: 77 }],
    ]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 77, answerBy: expect.any(Number), leaveRunning: false }]);
  });
});
