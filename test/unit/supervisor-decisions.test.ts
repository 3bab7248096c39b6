/**
 * The supervisor's judgements about the world (src/launcher/decisions.ts) and its event queue,
 * with a fake clock: which file event wins, whether the daemon is alive, whom a forwarded
 * signal reaches, and the run record a job leaves for the next one.
 */
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import { exitMeansSaved } from '../../src/engine/app/app-link.js';
import { daemonVerdict, type DaemonSigns } from '../../src/engine/daemon-link/daemon-verdict.js';
import type { RunFiles } from '../../src/engine/link.js';
import { completeStop, endOfJobRecord, eventsFromFiles, signalTargets, stopRecord, type JobEnd } from '../../src/launcher/decisions.js';
import { EventQueue } from '../../src/launcher/event-queue.js';
import { restartsOnResume } from '../../src/launcher/preflight.js';
import { awaitsDaemon, initialState, type MachineAction, type MachineEvent, type MachineState } from '../../src/launcher/machine-state.js';
import { step } from '../../src/launcher/machine.js';
import type { RunState } from '../../src/state/run-state.js';

const CONFIG = { dumpTimeoutMs: 300_000, resumeTimeoutMs: 600_000, minRuntimeMs: 0, restarts: 0, maxRestarts: 100 };

/** The machine after EVENTS at the given times (the fake clock). */
function after(events: Array<[number, MachineEvent]>): MachineState {
  let state = initialState(CONFIG, 0);
  for (const [now, event] of events) state = step(state, event, now).state;
  return state;
}

const running = (): MachineState => after([[0, { type: 'start', mode: 'fresh' }], [5, { type: 'spawned', pid: 42 }]]);
const checkpointing = (): MachineState => step(running(), { type: 'checkpointSignal' }, 1000).state;
const resuming = (): MachineState => after([[0, { type: 'start', mode: 'resume' }]]);

/** Feeds the events the files mean back into the machine, as the supervisor does; returns the actions. */
function settle(state: MachineState, files: RunFiles, now: number): MachineAction[] {
  const actions: MachineAction[] = [];
  for (const event of eventsFromFiles(state, files)) {
    const next = step(state, event, now);
    state = next.state;
    actions.push(...next.actions);
  }
  return actions;
}

describe('which file event wins', () => {
  it("the program's own exit status wins over everything else: a finished run is never resubmitted", () => {
    const files: RunFiles = { exitStatus: 0, checkpointOk: 'new', checkpointOkAtRequest: 'old', programAlive: false, dumpFailed: { reason: 'x', retryable: false } };
    expect(eventsFromFiles(checkpointing(), files)).toEqual([{ type: 'programExited', exitCode: 0 }]);
    expect(settle(checkpointing(), files, 2000).filter((action) => action.type === 'exit')).toEqual([{ type: 'exit', code: 0, outcome: 'finished', exitCode: 0 }]);
    expect(eventsFromFiles(resuming(), { exitStatus: 3, restoredPid: 7 })).toEqual([{ type: 'programExited', exitCode: 3 }]);
  });

  it("while resuming, the daemon's failure report wins over its pidfile; the rest is not looked at", () => {
    const failure = { reason: 'File exists', retryable: true };
    expect(eventsFromFiles(resuming(), { restoreFailed: failure, restoredPid: 7 })).toEqual([{ type: 'restoreFailed', reason: 'File exists', retryable: true }]);
    expect(eventsFromFiles(resuming(), { restoredPid: 7, checkpointOk: 'a', dumpFailed: failure, programAlive: false })).toEqual([{ type: 'restored', pid: 7 }]);
    expect(eventsFromFiles(resuming(), {})).toEqual([]);
  });

  it('a new checkpoint_ok with the program gone: both events, in the order that exits 99 at once', () => {
    const files: RunFiles = { checkpointOk: 'ino2', checkpointOkAtRequest: 'ino1', programAlive: false };
    expect(eventsFromFiles(checkpointing(), files)).toEqual([{ type: 'checkpointOk' }, { type: 'programGone' }]);
    expect(settle(checkpointing(), files, 1500).filter((action) => action.type === 'exit')).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
  });

  it('the checkpoint_ok that was there when the request went out is not new; none at all is not either', () => {
    expect(eventsFromFiles(checkpointing(), { checkpointOk: 'ino1', checkpointOkAtRequest: 'ino1', programAlive: true })).toEqual([]);
    expect(eventsFromFiles(checkpointing(), { checkpointOkAtRequest: 'ino1', programAlive: true })).toEqual([]);
    expect(eventsFromFiles(checkpointing(), { checkpointOk: 'ino1', programAlive: true })).toEqual([{ type: 'checkpointOk' }]);
  });

  it('dump_failed and checkpoint_ok count only while a request is out; the program gone counts always', () => {
    const files: RunFiles = { dumpFailed: { reason: 'criu: boom', retryable: false }, checkpointOk: 'new', checkpointOkAtRequest: 'old', programAlive: false };
    expect(eventsFromFiles(running(), files)).toEqual([{ type: 'programGone' }]);
    expect(eventsFromFiles(checkpointing(), files)).toEqual([{ type: 'dumpFailed', reason: 'criu: boom' }, { type: 'checkpointOk' }, { type: 'programGone' }]);
    // The failure answers the request: the checkpoint_ok after it in the same look is then ignored, and the program is lost.
    expect(settle(checkpointing(), files, 2000).filter((action) => action.type === 'exit')).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
  });

  it('a request left unanswered past --dump-timeout still takes a late checkpoint_ok', () => {
    const late = step(checkpointing(), { type: 'timer', name: 'dump' }, 301_000).state;
    expect(late.phase).toBe('running');
    expect(eventsFromFiles(late, { checkpointOk: 'new', checkpointOkAtRequest: 'old', programAlive: false })).toEqual([{ type: 'checkpointOk' }, { type: 'programGone' }]);
  });

  it('nothing while no program is watched, and nothing once the job holds for --min-runtime or has ended', () => {
    expect(eventsFromFiles(initialState(CONFIG, 0), { checkpointOk: 'new' })).toEqual([]);
    const holding = after([
      [0, { type: 'start', mode: 'fresh' }],
      [5, { type: 'spawned', pid: 42 }],
      [1000, { type: 'checkpointSignal' }],
      [1500, { type: 'programGone' }],
    ]);
    const held = step({ ...holding, config: { ...CONFIG, minRuntimeMs: 60_000 } }, { type: 'checkpointOk' }, 1600).state;
    expect(held.phase).toBe('holding');
    expect(eventsFromFiles(held, { exitStatus: 1, programAlive: false })).toEqual([]);
    const ended = step(running(), { type: 'programExited', exitCode: 0 }, 2000).state;
    expect(ended.phase).toBe('ended');
    expect(eventsFromFiles(ended, { exitStatus: 0 })).toEqual([]);
  });
});

describe('when the safety poll runs fast', () => {
  it('while a restore or a checkpoint request is out, also one left past --dump-timeout; not while the program just runs', () => {
    expect(awaitsDaemon(resuming())).toBe(true);
    expect(awaitsDaemon(checkpointing())).toBe(true);
    expect(awaitsDaemon(step(checkpointing(), { type: 'timer', name: 'dump' }, 301_000).state)).toBe(true);
    expect(awaitsDaemon(running())).toBe(false);
    expect(awaitsDaemon(step(checkpointing(), { type: 'dumpFailed', reason: 'x' }, 2000).state)).toBe(false);
    expect(awaitsDaemon(initialState(CONFIG, 0))).toBe(false);
  });
});

describe("the daemon's liveness verdict", () => {
  const signs = (overrides: Partial<DaemonSigns>): DaemonSigns => ({
    requestUnread: true,
    requestPath: '/spool/j1.checkpoint',
    heartbeatPath: '/spool/ckpt-daemon.heartbeat',
    graceMs: 5000,
    staleMs: 6000,
    ...overrides,
  });

  it('a fresh heartbeat means busy, read or not: look again later', () => {
    expect(daemonVerdict(signs({ heartbeatAgeMs: 0 }))).toEqual({ silent: false });
    expect(daemonVerdict(signs({ heartbeatAgeMs: 5999 }))).toEqual({ silent: false });
    expect(daemonVerdict(signs({ heartbeatAgeMs: 5999, requestUnread: false }))).toEqual({ silent: false });
  });

  it('a daemon without heartbeat that took the request is trusted', () => {
    expect(daemonVerdict(signs({ requestUnread: false }))).toEqual({ silent: false });
  });

  it('a request unread past the grace with no heartbeat, or a stale one: no daemon, and why', () => {
    expect(daemonVerdict(signs({}))).toEqual({
      silent: true,
      detail:
        'no checkpoint daemon answered: /spool/j1.checkpoint is still unread after 5 s and no heartbeat file /spool/ckpt-daemon.heartbeat ' +
        '(is ckpt-daemon running on this node? for a daemon without heartbeat use --no-daemon-check)',
    });
    expect(daemonVerdict(signs({ heartbeatAgeMs: 6000 }))).toMatchObject({ silent: true, detail: expect.stringContaining('its heartbeat /spool/ckpt-daemon.heartbeat is 6 s old') });
  });

  it('a heartbeat that goes stale after the daemon took the request: it died mid-way', () => {
    expect(daemonVerdict(signs({ requestUnread: false, heartbeatAgeMs: 12_400 }))).toEqual({
      silent: true,
      detail: 'the checkpoint daemon stopped while serving /spool/j1.checkpoint: its heartbeat /spool/ckpt-daemon.heartbeat is 12 s old',
    });
  });
});

describe('whom a forwarded signal reaches', () => {
  const SHIM = 'sh\x00-c\x00shim';
  it('the program under the shim, once the shim has exec-ed it', () => {
    expect(signalTargets({ children: [{ pid: 8, commandLine: 'sleep\x00100' }], shimCommandLine: SHIM, programAlive: true, now: 0, deadline: 2000 })).toEqual({ retry: false, pids: [8] });
  });

  it('waits while the shim has no child yet, or a child still running the shim (it would swallow the signal)', () => {
    expect(signalTargets({ children: [], shimCommandLine: SHIM, programAlive: true, now: 0, deadline: 2000 })).toEqual({ retry: true });
    expect(signalTargets({ children: [{ pid: 8, commandLine: SHIM }], shimCommandLine: SHIM, programAlive: true, now: 1999, deadline: 2000 })).toEqual({ retry: true });
  });

  it('bounded: past the deadline, or once the program or the job is gone, it goes to whoever is there', () => {
    expect(signalTargets({ children: [{ pid: 8, commandLine: SHIM }], shimCommandLine: SHIM, programAlive: true, now: 2000, deadline: 2000 })).toEqual({ retry: false, pids: [8] });
    expect(signalTargets({ children: [], shimCommandLine: SHIM, programAlive: false, now: 0, deadline: 2000 })).toEqual({ retry: false, pids: [] });
  });
});

describe('the run record at the end of a job', () => {
  const before = (): RunState => ({
    schema: 1,
    runId: 'r',
    command: ['prog'],
    workdir: '/w',
    createdAt: '2026-01-01T00:00:00.000Z',
    status: 'running',
    restarts: 2,
    relayed: { stdout: 10, stderr: 0 },
    history: [
      { jobId: 'j1', startedAt: '2026-01-01T00:00:00.000Z', mode: 'fresh', endedAt: '2026-01-01T01:00:00.000Z', outcome: 'checkpointed', exitCode: 99 },
      { jobId: 'j2', startedAt: '2026-01-01T02:00:00.000Z', mode: 'resume' },
    ],
  });
  const END = new Date('2026-01-01T03:00:00.000Z');
  const end = (overrides: Partial<JobEnd>): JobEnd => ({ code: 0, outcome: 'failed', relayed: { stdout: 50, stderr: 7 }, terminating: false, endedAt: END, ...overrides });

  it('a checkpoint: one more restart, status checkpointed, the output marks of that checkpoint, the job closed', () => {
    const record = endOfJobRecord(before(), end({ code: 99, outcome: 'checkpointed', checkpointAtStart: 'ino1', checkpointNow: 'ino2' }));
    expect(record.state).toMatchObject({ status: 'checkpointed', restarts: 3, relayed: { stdout: 50, stderr: 7 }, checkpointOutput: { checkpoint: 'ino2', stdout: 50, stderr: 7 } });
    expect(record.state.history[1]).toEqual({ jobId: 'j2', startedAt: '2026-01-01T02:00:00.000Z', mode: 'resume', endedAt: END.toISOString(), outcome: 'checkpointed', exitCode: 99 });
    expect(record.state.history[0].exitCode).toBe(99);
    expect(record).toMatchObject({ removeCheckpointOk: false, removeExitStatus: false });
  });

  it('finished: the program code kept, and its checkpoint_ok removed so that it is never resumed', () => {
    const record = endOfJobRecord(before(), end({ code: 7, outcome: 'finished', exitCode: 7, checkpointAtStart: 'ino1', checkpointNow: 'ino1' }));
    expect(record.state).toMatchObject({ status: 'finished', exitCode: 7, restarts: 2 });
    expect(record.state.checkpointOutput).toBeUndefined();
    expect(record).toMatchObject({ removeCheckpointOk: true, removeExitStatus: false });
  });

  it('a failure keeps the status that decides the next job (a run with a checkpoint resumes)', () => {
    const prior = { ...before(), status: 'checkpointed' as const };
    const record = endOfJobRecord(prior, end({ code: ExitCode.ResumeTimeout }));
    expect(record.state).toMatchObject({ status: 'checkpointed', restarts: 2 });
    expect(record.state.exitCode).toBeUndefined();
    expect(record.state.history[1]).toMatchObject({ outcome: 'failed', exitCode: ExitCode.ResumeTimeout });
    expect(record).toMatchObject({ removeCheckpointOk: false, removeExitStatus: false });
  });

  it("a program stopped by the signal passed on: its exit status is that stop's, not a final one, and goes", () => {
    expect(endOfJobRecord(before(), end({ code: 143, terminating: true }))).toMatchObject({ removeExitStatus: true, removeCheckpointOk: false });
    expect(endOfJobRecord(before(), end({ code: 143, outcome: 'finished', exitCode: 143, terminating: true })).removeExitStatus).toBe(false);
  });

  it("why the job stopped goes into its history entry; the record made when the checkpoint completed and the one at the exit agree (one restart)", () => {
    const atHold = endOfJobRecord(before(), end({ code: 99, outcome: 'checkpointed', checkpointNow: 'ino2' }));
    const atExit = endOfJobRecord(before(), end({ code: 99, outcome: 'checkpointed', checkpointNow: 'ino2', stop: { reason: 'preemption' } }));
    expect(atHold.state.history[1].reason).toBeUndefined();
    expect(atExit.state.history[1]).toMatchObject({ outcome: 'checkpointed', reason: 'preemption' });
    expect([atHold.state.restarts, atExit.state.restarts]).toEqual([3, 3]);
  });

  it('leaves the record it was given as it was', () => {
    const prior = before();
    endOfJobRecord(prior, end({ code: 99, outcome: 'checkpointed', checkpointNow: 'ino2' }));
    expect(prior).toEqual(before());
  });
});

describe("the stop's reason: the exit waits for no scheduler answer", () => {
  const SIGNAL_AT = Date.parse('2026-01-01T10:00:00.000Z');
  const seen = { signal: 'checkpoint' as const, at: SIGNAL_AT, walltimeEndsAt: SIGNAL_AT + 30 * 60_000, schedulerJobId: '4242' };
  const saidPreemption = { said: 'preemption' as const, preemptible: true };

  it('exit 99 is decided by the checkpoint alone: at checkpoint_ok, whatever the scheduler has (not) said', () => {
    const signalled = step(running(), { type: 'checkpointSignal' }, 1000).state;
    const gone = step(signalled, { type: 'programGone' }, 1200).state;
    const done = step(gone, { type: 'checkpointOk' }, 1250);
    expect(done.actions.at(-1)).toEqual({ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' });
  });

  it("answered before the exit: the scheduler's word, decided at the signal's time, nothing pending", () => {
    expect(stopRecord(seen, saidPreemption)).toEqual({ reason: 'preemption' });
    // The clock part is the signal's: 30 min before the walltime, without the lead, a checkpoint signal is the walltime's.
    expect(stopRecord(seen, {})).toEqual({ reason: 'walltime' });
  });

  it("no answer by the exit: the clock's guess (with what is known without asking), marked pending with what it was made of", () => {
    const record = stopRecord(seen, undefined, { preemptible: true });
    expect(record).toEqual({
      reason: 'preemption',
      reasonPending: { signal: 'checkpoint', at: '2026-01-01T10:00:00.000Z', walltimeEndsAt: '2026-01-01T10:30:00.000Z', schedulerJobId: '4242' },
    });
    expect(stopRecord({ signal: 'terminate', at: SIGNAL_AT }, undefined)).toEqual({ reason: 'manual', reasonPending: { signal: 'terminate', at: '2026-01-01T10:00:00.000Z' } });
  });

  it('the next job completes a pending record with what the scheduler says of that job, as at its signal', () => {
    const pending = { jobId: 'j1', startedAt: '2026-01-01T09:00:00.000Z', mode: 'fresh' as const, outcome: 'checkpointed' as const, exitCode: 99, ...stopRecord(seen, undefined) };
    expect(pending.reason).toBe('walltime');
    const completed = completeStop(pending, saidPreemption);
    expect(completed).toEqual({ jobId: 'j1', startedAt: '2026-01-01T09:00:00.000Z', mode: 'fresh', outcome: 'checkpointed', exitCode: 99, reason: 'preemption' });
    // A termination signal 20 s before the recorded walltime was the scheduler's kill, whenever the next job asks.
    const late = { ...pending, ...stopRecord({ signal: 'terminate', at: seen.walltimeEndsAt - 20_000, walltimeEndsAt: seen.walltimeEndsAt }, undefined) };
    expect(completeStop(late, { preemptible: false }).reason).toBe('walltime');
    // A record with nothing pending stays as it is.
    expect(completeStop(completed, { said: 'manual' })).toBe(completed);
  });

  it('the end of a job carries the pending mark into its record; an answer at the hold clears it', () => {
    const record = endOfJobRecord(
      { schema: 1, runId: 'r', command: ['p'], workdir: '/w', createdAt: '2026-01-01T00:00:00.000Z', status: 'running', restarts: 0, relayed: { stdout: 0, stderr: 0 }, history: [{ jobId: 'j1', startedAt: '2026-01-01T09:00:00.000Z', mode: 'fresh' }] },
      { code: 99, outcome: 'checkpointed', relayed: { stdout: 0, stderr: 0 }, terminating: false, endedAt: new Date(SIGNAL_AT + 2000), stop: stopRecord(seen, undefined) },
    );
    expect(record.state.history[0]).toMatchObject({ reason: 'walltime', reasonPending: { schedulerJobId: '4242' } });
    const answeredLater = endOfJobRecord(record.state, { code: 99, outcome: 'checkpointed', relayed: { stdout: 0, stderr: 0 }, terminating: false, endedAt: new Date(SIGNAL_AT + 3000), stop: stopRecord(seen, saidPreemption) });
    expect(answeredLater.state.history[0].reasonPending).toBeUndefined();
    expect(answeredLater.state.history[0].reason).toBe('preemption');
  });
});

describe('restarts, as `ckpt-run status` and --max-restarts count them', () => {
  const run = (restarts: number, outcomes: Array<'checkpointed' | 'failed' | undefined>): RunState => ({
    schema: 1, runId: 'r', command: ['p'], workdir: '/w', createdAt: '2026-01-01T00:00:00.000Z', status: 'checkpointed', restarts, relayed: { stdout: 0, stderr: 0 },
    history: outcomes.map((outcome, i) => ({ jobId: `j${i}`, startedAt: '2026-01-01T00:00:00.000Z', mode: i === 0 ? 'fresh' : 'resume', ...(outcome ? { outcome } : {}) })),
  });

  it("a resume after an exit 99 was counted by that exit; one after a crash or a failed job counts itself", () => {
    expect(restartsOnResume(run(1, ['checkpointed']))).toBe(1);
    // Job j1 resumed and crashed (no end recorded): the job that resumes now is a restart too.
    expect(restartsOnResume(run(1, ['checkpointed', undefined]))).toBe(2);
    expect(restartsOnResume(run(1, ['checkpointed', 'failed']))).toBe(2);
    expect(restartsOnResume(run(0, []))).toBe(0);
  });
});

describe('the event queue', () => {
  it('handles an event posted during another after it, never inside it', () => {
    const seen: string[] = [];
    const queue: EventQueue<string> = new EventQueue((event) => {
      seen.push(`begin ${event}`);
      if (event === 'a') {
        queue.post('b');
        queue.post('c');
      }
      seen.push(`end ${event}`);
    });
    queue.post('a');
    expect(seen).toEqual(['begin a', 'end a', 'begin b', 'end b', 'begin c', 'end c']);
  });

  it('handles nothing after close, not even what was already queued', () => {
    const seen: string[] = [];
    const queue: EventQueue<string> = new EventQueue((event) => {
      seen.push(event);
      if (event === 'exit') {
        queue.post('late');
        queue.close();
      }
    });
    queue.post('exit');
    queue.post('after');
    expect(seen).toEqual(['exit']);
  });
});

describe('--engine app: which exit means saved, and why a save was asked', () => {
  it('the agreed code, or any exit with --app-any-exit-saved; never a death by the save signal itself', () => {
    expect(exitMeansSaved(85, { code: 85 }, 'SIGUSR2')).toBe(true);
    expect(exitMeansSaved(0, { code: 85 }, 'SIGUSR2')).toBe(false);
    expect(exitMeansSaved(0, 'any', 'SIGTERM')).toBe(true);
    expect(exitMeansSaved(3, 'any', 'SIGTERM')).toBe(true);
    expect(exitMeansSaved(143, 'any', 'SIGTERM')).toBe(false);
    expect(exitMeansSaved(140, { code: 140 }, 'SIGUSR2')).toBe(false);
  });
});
