/**
 * The state machine with --engine app (fake clock): the program saves itself on a signal and
 * exits; app-link.ts publishes its agreed exit as checkpointOk + programGone (the daemon's answer).
 */
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import { ANSWER_MARGIN_MS, appGraceMs, DEFAULT_APP_GRACE_MS, initialState, step, type MachineAction, type MachineConfig, type MachineEvent, type MachineState } from '../../src/launcher/machine.js';

const APP = { signal: 'SIGUSR2' as NodeJS.Signals };
const CONFIG: MachineConfig = { dumpTimeoutMs: 300_000, resumeTimeoutMs: 600_000, minRuntimeMs: 0, restarts: 0, maxRestarts: 100, app: APP };

function drive(config: Partial<MachineConfig>, events: Array<[number, MachineEvent]>) {
  let state: MachineState = initialState({ ...CONFIG, ...config }, 0);
  const actions: MachineAction[] = [];
  for (const [now, event] of events) {
    const next = step(state, event, now);
    state = next.state;
    actions.push(...next.actions);
  }
  const logs = (level: string): string[] => actions.flatMap((a) => (a.type === 'log' && a.level === level ? [a.message] : []));
  return { state, actions, exits: actions.filter((a) => a.type === 'exit'), of: (type: MachineAction['type']) => actions.filter((a) => a.type === type), logs };
}

const fresh: Array<[number, MachineEvent]> = [
  [0, { type: 'start', mode: 'fresh' }],
  [5, { type: 'spawned', pid: 42 }],
];
/** What app-link.ts makes of the agreed exit: the daemon protocol's answer. */
const saved = (at: number): Array<[number, MachineEvent]> => [
  [at, { type: 'checkpointOk' }],
  [at, { type: 'programGone' }],
];

describe('--engine app: the state machine', () => {
  it('saved: the signal asks the program to save (bounded by the grace), its agreed exit makes exit 99', () => {
    const run = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], ...saved(1800)]);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.of('setTimer')).toEqual([{ type: 'setTimer', name: 'dump', ms: DEFAULT_APP_GRACE_MS }]);
    expect(run.logs('info')).toContain('asking the program to save: SIGUSR2 to its process group (PID 42); waiting up to 60 s for it to exit');
    expect(run.logs('info')).toContain('the program saved its state and exited 800 ms after the signal; exit 99 so that the job is resubmitted');
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
  });

  it('saved, under OAR: exit 99 waits for --min-runtime (the 60-second rule); --max-restarts stops it instead', () => {
    const held = drive({ minRuntimeMs: 62_000 }, [...fresh, [10_000, { type: 'checkpointSignal' }], ...saved(11_000)]);
    expect(held.exits).toEqual([]);
    expect(held.of('setTimer')).toContainEqual({ type: 'setTimer', name: 'minRuntime', ms: 51_000 });
    expect(step(held.state, { type: 'timer', name: 'minRuntime' }, 62_000).actions).toContainEqual({ type: 'exit', code: 99, outcome: 'checkpointed' });
    const capped = drive({ restarts: 3, maxRestarts: 3 }, [...fresh, [1000, { type: 'checkpointSignal' }], ...saved(1500)]);
    expect(capped.exits).toEqual([{ type: 'exit', code: ExitCode.MaxRestarts, outcome: 'failed' }]);
  });

  it('finished: another exit after the signal is the program\'s own end, passed through', () => {
    const run = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1200, { type: 'programExited', exitCode: 0 }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 0, outcome: 'finished', exitCode: 0 }]);
    expect(run.logs('info')).toContain('program exited with code 0 after the save signal: not the agreed code (--app-saved-code), so this is its own end');
    const unasked = drive({}, [...fresh, [1000, { type: 'programExited', exitCode: 85 }]]);
    expect(unasked.exits).toEqual([{ type: 'exit', code: 85, outcome: 'finished', exitCode: 85 }]);
  });

  it('a death by the save signal itself (not caught): its code, a failure that keeps the last save, never 99', () => {
    const run = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1001, { type: 'programExited', exitCode: 128 + 12 }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 140, outcome: 'failed' }]);
    expect(run.logs('error')[0]).toMatch(/^the program died of SIGUSR2, the save signal \(exit 140\): it does not catch it, so it saved nothing; not exiting 99/);
  });

  it('timeout: a program still running after the grace is killed and reported (exit 15), never a 99', () => {
    const run = drive({ app: { ...APP, graceMs: 30_000 } }, [...fresh, [1000, { type: 'checkpointSignal' }], [31_000, { type: 'timer', name: 'dump' }]]);
    expect(run.of('setTimer')).toEqual([{ type: 'setTimer', name: 'dump', ms: 30_000 }]);
    expect(run.of('killProgram')).toHaveLength(1);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.AppTimeout, outcome: 'failed' }]);
    expect(run.logs('error')[0]).toMatch(/^the program did not exit within 30 s of SIGUSR2 \(bound: --app-grace\): killed; not exiting 99/);
    // Its exit as it dies of the kill changes nothing: the job has ended.
    expect(step(run.state, { type: 'programExited', exitCode: 137 }, 31_001).actions).toEqual([]);
  });

  it('gone without an exit status after the signal (killed from outside): exit 5 at once, never 99', () => {
    const run = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1500, { type: 'programGone' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
  });

  it('second signal: the program is asked once; the save still ends the job with 99', () => {
    const events: Array<[number, MachineEvent]> = [...fresh];
    for (let i = 0; i < 20; i++) events.push([1000 + i * 10, { type: 'checkpointSignal' }]);
    const run = drive({}, [...events, ...saved(2000)]);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.logs('info').filter((message) => message.includes('a checkpoint is already in progress'))).toHaveLength(19);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('signal before start: the program is stopped as soon as it is known, no save signal, exit 99 (its saved state unchanged)', () => {
    const run = drive({}, [[0, { type: 'start', mode: 'resume' }], [1, { type: 'checkpointSignal' }], [3, { type: 'spawned', pid: 7 }]]);
    expect(run.of('spawn')).toHaveLength(1); // a resume starts the program again: no daemon
    expect(run.of('requestResume')).toEqual([]);
    expect(run.of('requestCheckpoint')).toEqual([]);
    expect(run.actions.filter((a) => a.type === 'watchProgram' || a.type === 'killProgram')).toEqual([{ type: 'watchProgram', pid: 7 }, { type: 'killProgram' }]);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('the grace: --app-grace, or what the walltime leaves, never past the walltime margin; 60 s without either', () => {
    const config = { ...CONFIG, walltimeEndsAt: 720_000 };
    expect(appGraceMs(config, APP, 600_000)).toBe(120_000 - ANSWER_MARGIN_MS);
    expect(appGraceMs(config, { ...APP, graceMs: 30_000 }, 600_000)).toBe(30_000);
    expect(appGraceMs(config, { ...APP, graceMs: 300_000 }, 600_000)).toBe(120_000 - ANSWER_MARGIN_MS);
    expect(appGraceMs(config, APP, 719_000)).toBe(1000); // at least a second, even at the walltime
    expect(appGraceMs(CONFIG, APP, 600_000)).toBe(DEFAULT_APP_GRACE_MS);
    const run = drive({ walltimeEndsAt: 720_000 }, [...fresh, [600_000, { type: 'checkpointSignal' }], [715_000, { type: 'timer', name: 'dump' }]]);
    expect(run.logs('error')[0]).toMatch(/within 115 s of SIGUSR2 \(bound: the walltime\)/);
  });
});
