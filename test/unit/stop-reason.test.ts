/** Why a job stopped: the classifier and the scheduler answers it reads (values as OAR 2.5.9 and Slurm 22.05 give them). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { oarStopFacts } from '../../src/scheduler/oar/oar.js';
import { NO_SCHEDULER } from '../../src/scheduler/scheduler.js';
import { simulatedStopFacts } from '../../src/scheduler/simulated.js';
import { slurmStopFacts } from '../../src/scheduler/slurm/slurm.js';
import { stopReason, WALLTIME_SLACK_MS } from '../../src/scheduler/stop-reason.js';

const NOW = 1_800_000_000_000;
const MIN = 60_000;

describe('stopReason', () => {
  it("the scheduler's word wins over the clock and the job type", () => {
    expect(stopReason({ now: NOW, signal: 'checkpoint', walltimeEndsAt: NOW + MIN, leadMs: MIN, said: 'preemption' })).toBe('preemption');
    expect(stopReason({ now: NOW, signal: 'checkpoint', walltimeEndsAt: NOW + 60 * MIN, preemptible: true, said: 'manual' })).toBe('manual');
    expect(stopReason({ now: NOW, signal: 'terminate', said: 'walltime' })).toBe('walltime');
  });

  it('a checkpoint signal within the lead before the walltime (and a little late) is the walltime; earlier, a preemption or a person', () => {
    const at = (leftMs: number, preemptible: boolean) => stopReason({ now: NOW, signal: 'checkpoint', walltimeEndsAt: NOW + leftMs, leadMs: 2 * MIN, preemptible });
    expect(at(2 * MIN, false)).toBe('walltime');
    expect(at(2 * MIN + WALLTIME_SLACK_MS, true)).toBe('walltime');
    expect(at(2 * MIN + WALLTIME_SLACK_MS + 1, true)).toBe('preemption');
    expect(at(30 * MIN, false)).toBe('manual');
  });

  it('without the lead: a preemptible job was preempted, another one reached its walltime', () => {
    expect(stopReason({ now: NOW, signal: 'checkpoint', walltimeEndsAt: NOW + 30 * MIN, preemptible: true })).toBe('preemption');
    expect(stopReason({ now: NOW, signal: 'checkpoint', walltimeEndsAt: NOW + 30 * MIN })).toBe('walltime');
    expect(stopReason({ now: NOW, signal: 'checkpoint' })).toBe('walltime');
  });

  it('a termination signal at the walltime is the scheduler ending the job; before it, a person (or a preemption)', () => {
    expect(stopReason({ now: NOW, signal: 'terminate', walltimeEndsAt: NOW + 1000 })).toBe('walltime');
    expect(stopReason({ now: NOW, signal: 'terminate', walltimeEndsAt: NOW + 30 * MIN })).toBe('manual');
    expect(stopReason({ now: NOW, signal: 'terminate' })).toBe('manual');
    expect(stopReason({ now: NOW, signal: 'terminate', walltimeEndsAt: NOW + 30 * MIN, preemptible: true })).toBe('preemption');
  });
});

describe('oarStopFacts (oarstat -J -f -j ID)', () => {
  const oarstat = (types: string[], events: Array<{ type: string; description: string; date: number; event_id: number }>) =>
    JSON.stringify({ 51: { Job_Id: 51, types, events, state: 'Running' } });
  const checkpoint = (by: string, date: number, id: number) => ({ type: 'CHECKPOINT', description: `User ${by} requested a checkpoint on the job 51 on localhost`, date, event_id: id });

  it("who asked for the latest checkpoint: metasched (a besteffort job's resources are needed), sarko (walltime), a user", () => {
    expect(oarStopFacts(oarstat(['besteffort', 'idempotent'], [checkpoint('oar (metasched)', 100, 7)]))).toEqual({ said: 'preemption', preemptible: true });
    expect(oarStopFacts(oarstat(['idempotent'], [checkpoint('oar (sarko)', 100, 7)]))).toEqual({ said: 'walltime', preemptible: false });
    expect(oarStopFacts(oarstat(['idempotent'], [checkpoint('ckptoar', 100, 7)]))).toEqual({ said: 'manual', preemptible: false });
    // The latest counts: a user's request, then OAR's preemption signal.
    const both = [checkpoint('oar (metasched)', 200, 9), { type: 'CHECKPOINT_SUCCESSFULL', description: 'x', date: 201, event_id: 10 }, checkpoint('ckptoar', 100, 7)];
    expect(oarStopFacts(oarstat(['besteffort'], both)).said).toBe('preemption');
  });

  it('no CHECKPOINT event yet, or no answer: nothing said', () => {
    expect(oarStopFacts(oarstat(['besteffort'], []))).toEqual({ said: undefined, preemptible: true });
    expect(oarStopFacts(undefined)).toEqual({});
    expect(oarStopFacts('not json')).toEqual({});
    expect(oarStopFacts('{}')).toEqual({});
  });
});

describe('slurmStopFacts (scontrol show job -o ID)', () => {
  it('a PreemptTime means a preemption; None or no answer says nothing', () => {
    const line = (preempt: string) => `JobId=28 JobName=trap2.sh JobState=RUNNING Partition=lowprio PreemptEligibleTime=2026-12-04T21:40:53 PreemptTime=${preempt} SuspendTime=None`;
    expect(slurmStopFacts(line('2026-12-04T21:40:58'), 0)).toEqual({ said: 'preemption', preemptible: true });
    expect(slurmStopFacts(line('None'), 0)).toEqual({});
    expect(slurmStopFacts(undefined, 0)).toEqual({});
  });

  it("a job Slurm requeued already (Restarts above the run's own) is being preempted: its state at the SIGTERM that ends it", () => {
    // Measured on 22.05 at that SIGTERM: COMPLETING, Restarts one higher, no PreemptTime field at all.
    const ending = 'JobId=88 JobName=job.sh JobState=COMPLETING Reason=None Dependency=(null) Requeue=1 Restarts=1 BatchFlag=1 Partition=lowprio';
    expect(slurmStopFacts(ending, 0)).toEqual({ said: 'preemption', preemptible: true });
    // The requeued run itself (SLURM_RESTART_COUNT=1) is not.
    expect(slurmStopFacts(ending.replace('COMPLETING', 'RUNNING'), 1)).toEqual({});
  });
});

describe("the dry run's simulated scheduler, and no scheduler at all", () => {
  it("says what the dry run simulates (its walltime signal is the walltime's), not the scheduler's word about a person", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ckpt-simstop-')), 'simulated-stop');
    expect(simulatedStopFacts(file)).toEqual({});
    for (const reason of ['walltime', 'preemption', 'manual'] as const) {
      writeFileSync(file, `${reason}\n`);
      expect(simulatedStopFacts(file)).toEqual({ said: reason, source: "the dry run's simulated scheduler says so" });
    }
    writeFileSync(file, 'crash\n');
    expect(simulatedStopFacts(file)).toEqual({});
    // Without a scheduler, the source says a person, not a scheduler.
    expect(await NO_SCHEDULER.stopFacts?.()).toEqual({ said: 'manual', source: 'no scheduler: a person sent the signal' });
  });
});

