import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import { APP_EXIT_OPTIONS } from '../../src/engine/app/app-link.js';
import { saveGrace } from '../../src/launcher/machine-checkpoint.js';
import {
  ANSWER_MARGIN_MS,
  answerBy,
  DEFAULT_SAVE_GRACE_MS,
  initialState,
  type MachineAction,
  type MachineConfig,
  type MachineEvent,
  type MachineState,
} from '../../src/launcher/machine-state.js';
import { step } from '../../src/launcher/machine.js';
import { ASSUMED_THROUGHPUT, planFinal, selfTimedReason } from '../../src/launcher/final-plan.js';
import { parseLocalState } from '../../src/protocol/local-state.js';

const CONFIG: MachineConfig = {
  dumpTimeoutMs: 300_000,
  resumeTimeoutMs: 600_000,
  minRuntimeMs: 0,
  restarts: 0,
  maxRestarts: 100,
};

/** Feeds events at given times (a fake clock) and collects every action. */
function drive(config: Partial<MachineConfig>, events: Array<[number, MachineEvent]>) {
  let state: MachineState = initialState({ ...CONFIG, ...config }, 0);
  const actions: MachineAction[] = [];
  for (const [now, event] of events) {
    const next = step(state, event, now);
    state = next.state;
    actions.push(...next.actions);
  }
  const exits = actions.filter((action) => action.type === 'exit');
  return { state, actions, exits, of: (type: MachineAction['type']) => actions.filter((a) => a.type === type) };
}

const fresh: Array<[number, MachineEvent]> = [
  [0, { type: 'start', mode: 'fresh' }],
  [5, { type: 'spawned', pid: 42 }],
];

describe('fresh start → checkpoint → exit 99', () => {
  it('requests one dump for the signal and exits 99 once the program is gone and checkpoint_ok is new', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [1500, { type: 'programGone' }],
      [1600, { type: 'checkpointOk' }],
    ]);
    expect(run.of('spawn')).toHaveLength(1);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 42, answerBy: 1000 + 295_000, leaveRunning: false }]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
  });

  it('accepts checkpoint_ok before the program is seen gone', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [1600, { type: 'checkpointOk' }],
      [1700, { type: 'programGone' }],
    ]);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('ignores a second signal while a checkpoint is in progress (one request only)', () => {
    const events: Array<[number, MachineEvent]> = [...fresh];
    for (let i = 0; i < 100; i++) events.push([1000 + i, { type: 'checkpointSignal' }]);
    const run = drive({}, events);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.exits).toHaveLength(0);
  });

  const messages = (run: ReturnType<typeof drive>, level: string): string[] =>
    run.of('log').flatMap((action) => (action.type === 'log' && action.level === level ? [action.message] : []));

  it('says how long the dump took; under a walltime, warns when the dump took over half of what was left', () => {
    // The signal at 600 s of a 720 s walltime (oarsub --checkpoint 120); the dump takes 70 s.
    const tight = drive({ walltimeEndsAt: 720_000 }, [
      ...fresh,
      [600_000, { type: 'checkpointSignal' }],
      [670_000, { type: 'checkpointOk' }],
      [670_100, { type: 'programGone' }],
    ]);
    expect(messages(tight, 'info')).toContain('checkpoint complete in 70.1 s, program stopped; exit 99 so that the job is resubmitted');
    expect(messages(tight, 'warn')).toEqual([
      'the dump took 70.1 s of the 120 s left before the walltime when it was asked for: a dump still running at the walltime ' +
        'is killed with the job, and the work since the previous checkpoint is lost. Leave it more time: the checkpoint signal 141 s or more ' +
        'before the walltime (OAR: oarsub --checkpoint; Slurm: sbatch --signal=B:USR2@)',
    ]);
    expect(tight.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);

    const roomy = drive({ walltimeEndsAt: 720_000 }, [...fresh, [600_000, { type: 'checkpointSignal' }], [630_000, { type: 'programGone' }], [630_000, { type: 'checkpointOk' }]]);
    expect(messages(roomy, 'warn')).toEqual([]);
    const noWalltime = drive({}, [...fresh, [600_000, { type: 'checkpointSignal' }], [700_000, { type: 'programGone' }], [700_000, { type: 'checkpointOk' }]]);
    expect(messages(noWalltime, 'warn')).toEqual([]);
  });

  it('says at the checkpoint what node-local files travelled, what the program holds that cannot, and what its user made that did not', () => {
    const localState = parseLocalState(
      ['limit 1000', 'carried 600 /tmp/ompi.n1.1000', 'carried-created 100 /tmp/RtmpAb12', 'stays device /dev/nvidia0', 'stays-created over-limit:5000 /tmp/big', ''].join('\n'),
    );
    const run = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1500, { type: 'programGone' }], [1600, { type: 'checkpointOk', figures: { localState } }]]);
    expect(messages(run, 'info')).toContain('node-local files carried with the checkpoint: /tmp/ompi.n1.1000 (0.6 kB), /tmp/RtmpAb12 (0.1 kB, made since the program started): 0.7 kB');
    const [holds, made] = messages(run, 'warn');
    expect(holds).toMatch(/^the program holds what cannot travel with its checkpoint: \/dev\/nvidia0 \(a device of this node's\)\. /);
    expect(made).toMatch(/^made in this node's own folders since the program started, and not carried with its checkpoint: \/tmp\/big \(0\.0 MB, over what/);
    expect(messages(run, 'warn')).toHaveLength(2);
  });

  it('serves a signal that arrived before the program started as soon as its PID is known', () => {
    const run = drive({}, [
      [0, { type: 'start', mode: 'fresh' }],
      [1, { type: 'checkpointSignal' }],
      [3, { type: 'spawned', pid: 7 }],
    ]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 7, answerBy: 3 + 295_000, leaveRunning: false }]);
  });

  it('waits for --min-runtime before exiting 99, then exits on the timer', () => {
    const run = drive({ minRuntimeMs: 62_000 }, [
      ...fresh,
      [10_000, { type: 'checkpointSignal' }],
      [11_000, { type: 'programGone' }],
      [11_500, { type: 'checkpointOk' }],
    ]);
    expect(run.exits).toHaveLength(0);
    expect(run.of('setTimer')).toContainEqual({ type: 'setTimer', name: 'minRuntime', ms: 50_500 });
    const later = step(run.state, { type: 'timer', name: 'minRuntime' }, 62_000);
    expect(later.actions).toContainEqual({ type: 'exit', code: 99, outcome: 'checkpointed' });
  });

  it('never exits 99 when checkpoint_ok does not change: program gone, dump timer fires → exit 5', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [1500, { type: 'programGone' }],
      [301_000, { type: 'timer', name: 'dump' }],
    ]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
  });

  it('keeps watching a running program when the dump times out, and still honours a late checkpoint', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [301_000, { type: 'timer', name: 'dump' }],
    ]);
    expect(run.exits).toHaveLength(0);
    expect(run.state.phase).toBe('running');
    const late = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [301_000, { type: 'timer', name: 'dump' }],
      [302_000, { type: 'checkpointOk' }],
      [302_100, { type: 'programGone' }],
    ]);
    expect(late.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('after a failed dump the program keeps running and the next signal asks again', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [1200, { type: 'dumpFailed', reason: 'criu: boom' }],
      [11_000, { type: 'checkpointSignal' }],
    ]);
    expect(run.of('requestCheckpoint')).toHaveLength(2);
    expect(run.exits).toHaveLength(0);
    expect(run.of('log').some((a) => a.type === 'log' && a.level === 'error' && a.message.includes('criu: boom'))).toBe(true);
  });

  it('stops with exit 10, not 99, past --max-restarts', () => {
    const run = drive({ restarts: 3, maxRestarts: 3 }, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [1500, { type: 'programGone' }],
      [1600, { type: 'checkpointOk' }],
    ]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.MaxRestarts, outcome: 'failed' }]);
  });

  it('messages read as sentences: "1 time", and a quoted reason ending in its own full stop gets no second one', () => {
    const once = drive({ restarts: 1, maxRestarts: 1 }, [...fresh, [1000, { type: 'checkpointSignal' }], [1500, { type: 'programGone' }], [1600, { type: 'checkpointOk' }]]);
    const said = (run: ReturnType<typeof drive>) => run.actions.flatMap((action) => (action.type === 'log' ? [action.message] : []));
    expect(said(once).join('\n')).toMatch(/already resubmitted 1 time \(--max-restarts 1\)/);
    // CRIU's hints end with a full stop ("... consider using --tcp-established option.").
    const hint = 'Connected TCP socket, consider using --tcp-established option.';
    const failed = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1200, { type: 'dumpFailed', reason: hint }], [1300, { type: 'restoreFailed', reason: hint, retryable: false }]]);
    expect(said(failed)).toContain('checkpoint failed: Connected TCP socket, consider using --tcp-established option. The program keeps running; the next checkpoint signal tries again.');
    const restore = drive({}, [[0, { type: 'start', mode: 'resume' }], [500, { type: 'restoreFailed', reason: `${hint}\n`, retryable: false }]]);
    expect(said(restore)).toContain('restore failed: Connected TCP socket, consider using --tcp-established option. The checkpoint is kept; fix the cause and submit again.');
    expect([...said(failed), ...said(restore)].join('\n')).not.toMatch(/\.\. /);
  });
});

describe('the daemon\'s deadline and what the job says when a dump goes wrong', () => {
  const messages = (run: ReturnType<typeof drive>, level: string) =>
    run.actions.filter((a) => a.type === 'log' && a.level === level).map((a) => (a as { message: string }).message);

  it('asks the daemon to answer before the job stops waiting and before the walltime, each less a margin', () => {
    expect(answerBy(1000, 300_000)).toBe(1000 + 300_000 - ANSWER_MARGIN_MS);
    expect(answerBy(1000, 300_000, 61_000)).toBe(61_000 - ANSWER_MARGIN_MS);
    // the walltime already (nearly) over: still a second, not a deadline in the past
    expect(answerBy(1000, 300_000, 3000)).toBe(2000);
    // a short --dump-timeout keeps most of itself for the daemon
    expect(answerBy(1000, 4000)).toBe(1000 + 4000 - 800);
    const run = drive({ walltimeEndsAt: 720_000 }, [...fresh, [600_000, { type: 'checkpointSignal' }]]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 42, answerBy: 715_000, leaveRunning: false }]);
  });

  it('says the program runs on after an ordinary dump failure, and that it is frozen when the daemon says so', () => {
    const ordinary = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1200, { type: 'dumpFailed', reason: 'no space' }]]);
    expect(messages(ordinary, 'error')).toEqual(['checkpoint failed: no space. The program keeps running; the next checkpoint signal tries again.']);
    const frozen = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1200, { type: 'dumpFailed', reason: 'killed at the deadline', program: 'frozen' }]]);
    expect(messages(frozen, 'error')).toEqual([
      "checkpoint failed: killed at the deadline. The daemon reports the program STILL FROZEN: it does not run; ask the node's admin (ckpt-daemon --check).",
    ]);
    expect(frozen.state.phase).toBe('running');
  });

  it('a dump that failed after the program went away ends the job (exit 5, never 99), instead of waiting for the walltime', () => {
    const run = drive({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1100, { type: 'programGone' }], [1200, { type: 'dumpFailed', reason: '42 was killed by 9 unexpectedly' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
    expect(messages(run, 'error')).toEqual([
      'checkpoint failed: 42 was killed by 9 unexpectedly; the program is gone without an exit status, so nothing was saved and nothing runs on; not exiting 99',
    ]);
  });

  it('a program gone after --dump-timeout passed waits for a late checkpoint_ok once more, bounded: 99 if it comes, else exit 5', () => {
    const late: Array<[number, MachineEvent]> = [...fresh, [1000, { type: 'checkpointSignal' }], [301_000, { type: 'timer', name: 'dump', programState: 'S' }], [302_000, { type: 'programGone' }]];
    const bounded = drive({}, late);
    expect(bounded.of('setTimer').filter((a) => (a as { name: string }).name === 'dump')).toHaveLength(2);
    expect(bounded.exits).toEqual([]);
    const confirmed = drive({}, [...late, [303_000, { type: 'checkpointOk' }]]);
    expect(confirmed.exits).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
    const never = drive({}, [...late, [602_000, { type: 'timer', name: 'dump' }]]);
    expect(never.exits).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
  });

  it('after --dump-timeout with no answer, says what /proc shows of the program: stopped or running', () => {
    const signal: Array<[number, MachineEvent]> = [...fresh, [1000, { type: 'checkpointSignal' }]];
    const stopped = drive({}, [...signal, [301_000, { type: 'timer', name: 'dump', programState: 't' }]]);
    expect(messages(stopped, 'warn')).toEqual([
      expect.stringMatching(/has not answered the dump request after 300 s .*: the program is STOPPED \(state t: a criu that is still running holds it frozen\)/),
    ]);
    const running = drive({}, [...signal, [301_000, { type: 'timer', name: 'dump', programState: 'S' }]]);
    expect(messages(running, 'warn')).toEqual([expect.stringMatching(/: the program is running; the next checkpoint signal asks again$/)]);
    expect(running.exits).toEqual([]);
  });
});

describe('program ends on its own', () => {
  it('exits with the program code, also while a dump is pending', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [1100, { type: 'programExited', exitCode: 7 }],
      [1200, { type: 'checkpointOk' }],
    ]);
    expect(run.exits).toEqual([{ type: 'exit', code: 7, outcome: 'finished', exitCode: 7 }]);
  });

  it('a program gone without status and without any request is lost (exit 5), never 99', () => {
    const run = drive({}, [...fresh, [1000, { type: 'programGone' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
  });

  it('ignores a checkpoint_ok nobody asked for', () => {
    const run = drive({}, [...fresh, [1000, { type: 'checkpointOk' }], [2000, { type: 'programExited', exitCode: 0 }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 0, outcome: 'finished', exitCode: 0 }]);
  });
});

describe('resume', () => {
  const resume: Array<[number, MachineEvent]> = [[0, { type: 'start', mode: 'resume' }]];

  it('asks for a resume with a bounded wait, then watches the restored PID', () => {
    const run = drive({}, [...resume, [300, { type: 'restored', pid: 99 }], [5000, { type: 'programExited', exitCode: 3 }]]);
    expect(run.of('requestResume')).toEqual([{ type: 'requestResume', answerBy: 600_000 - 5000 }]);
    expect(run.of('setTimer')).toContainEqual({ type: 'setTimer', name: 'resume', ms: 600_000 });
    expect(run.of('clearTimer')).toContainEqual({ type: 'clearTimer', name: 'resume' });
    expect(run.of('watchProgram')).toEqual([{ type: 'watchProgram', pid: 99 }]);
    expect(run.exits).toEqual([{ type: 'exit', code: 3, outcome: 'finished', exitCode: 3 }]);
  });

  it('times out with exit 3', () => {
    const run = drive({}, [...resume, [600_000, { type: 'timer', name: 'resume' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.ResumeTimeout, outcome: 'failed' }]);
  });

  it('fails fast with exit 4 on a restore failure the daemon reports', () => {
    const run = drive({}, [...resume, [800, { type: 'restoreFailed', reason: 'bad size', retryable: false }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.RestoreFailed, outcome: 'failed' }]);
  });

  it('exits 99 to retry elsewhere when the restore failure is retryable (PID in use)', () => {
    const run = drive({ restarts: 1 }, [...resume, [800, { type: 'restoreFailed', reason: 'File exists', retryable: true }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('a lazy restore whose memory transfer failed after the program ran (the daemon killed it) resubmits: the checkpoint is intact', () => {
    const run = drive({ restarts: 1 }, [...resume, [300, { type: 'restored', pid: 5 }], [900, { type: 'restoreFailed', reason: 'criu lazy-pages was killed', retryable: true }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
    // but not while a checkpoint of the running program is under way: that request decides
    const dumping = drive({}, [...resume, [300, { type: 'restored', pid: 5 }], [400, { type: 'checkpointSignal' }], [900, { type: 'restoreFailed', reason: 'x', retryable: true }]]);
    expect(dumping.exits).toEqual([]);
  });

  it('a signal during the resume is served once the program is restored', () => {
    const run = drive({}, [...resume, [100, { type: 'checkpointSignal' }], [300, { type: 'restored', pid: 5 }]]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 5, answerBy: 300 + 295_000, leaveRunning: false }]);
  });

  it('gives up at once with exit 11 when no daemon answers', () => {
    const run = drive({}, [...resume, [5000, { type: 'daemonSilent', detail: 'no daemon' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.DaemonAbsent, outcome: 'failed' }]);
  });
});

describe('termination signals', () => {
  it('passes SIGTERM to the program, then exits 128+15 when it is gone', () => {
    const run = drive({}, [...fresh, [100, { type: 'terminate', signal: 'SIGTERM' }], [200, { type: 'programGone' }]]);
    expect(run.of('forwardSignal')).toEqual([{ type: 'forwardSignal', signal: 'SIGTERM' }]);
    expect(run.exits).toEqual([{ type: 'exit', code: 143, outcome: 'failed' }]);
  });

  it('a second SIGINT leaves at once', () => {
    const run = drive({}, [...fresh, [100, { type: 'terminate', signal: 'SIGINT' }], [150, { type: 'terminate', signal: 'SIGINT' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 130, outcome: 'failed' }]);
  });

  it('SIGTERM from a scheduler that preempts the job (Slurm, asked at the signal): a checkpoint, not a stop, then exit 99', () => {
    const run = drive({}, [...fresh, [100, { type: 'terminate', signal: 'SIGTERM', preempted: true }], [900, { type: 'checkpointOk' }], [950, { type: 'programGone' }]]);
    expect(run.of('forwardSignal')).toEqual([]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 42, answerBy: expect.any(Number), leaveRunning: false }]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
  });

  it('the same SIGTERM again during that checkpoint is passed on to the program; one not from a preemption is passed on at once', () => {
    const again = drive({}, [...fresh, [100, { type: 'terminate', signal: 'SIGTERM', preempted: true }], [300, { type: 'terminate', signal: 'SIGTERM' }]]);
    expect(again.of('requestCheckpoint')).toHaveLength(1);
    expect(again.of('forwardSignal')).toEqual([{ type: 'forwardSignal', signal: 'SIGTERM' }]);
    const manual = drive({}, [...fresh, [100, { type: 'terminate', signal: 'SIGTERM', preempted: false }]]);
    expect(manual.of('requestCheckpoint')).toEqual([]);
    expect(manual.of('forwardSignal')).toEqual([{ type: 'forwardSignal', signal: 'SIGTERM' }]);
  });
});

describe('start failures and the end', () => {
  it('a program that cannot be started ends the job with exit 126 and says why', () => {
    const run = drive({}, [[0, { type: 'start', mode: 'fresh' }], [3, { type: 'spawnFailed', reason: 'spawn ./x EACCES' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.NotExecutable, outcome: 'failed' }]);
    expect(run.of('log')).toContainEqual({ type: 'log', level: 'error', message: 'cannot start the program: spawn ./x EACCES' });
  });

  it('after the exit nothing acts: a later signal, file event or timer changes nothing', () => {
    const run = drive({}, [
      ...fresh,
      [1000, { type: 'programExited', exitCode: 0 }],
      [1001, { type: 'terminate', signal: 'SIGTERM' }],
      [1002, { type: 'programGone' }],
      [1003, { type: 'timer', name: 'minRuntime' }],
      [1004, { type: 'checkpointSignal' }],
    ]);
    expect(run.state.phase).toBe('ended');
    expect(run.exits).toEqual([{ type: 'exit', code: 0, outcome: 'finished', exitCode: 0 }]);
    expect(run.actions.filter((action) => action.type !== 'log')).toEqual([{ type: 'spawn' }, { type: 'watchProgram', pid: 42 }, run.exits[0]]);
  });
});

describe('periodic checkpoints (--interval)', () => {
  const EVERY = 60_000;
  const figures = { frozenMs: 120, bytes: 1_048_576 };
  const messages = (run: ReturnType<typeof drive>) => run.actions.flatMap((action) => (action.type === 'log' ? [action.message] : []));

  it('asks every interval for a checkpoint that leaves the program running, logs its figures, keeps it, and times the next', () => {
    const run = drive({ intervalMs: EVERY }, [
      ...fresh,
      [EVERY, { type: 'timer', name: 'interval' }],
      [EVERY + 500, { type: 'checkpointOk', figures }],
    ]);
    expect(run.of('setTimer').filter((action) => action.type === 'setTimer' && action.name === 'interval')).toHaveLength(2);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 42, answerBy: EVERY + 295_000, leaveRunning: true }]);
    expect(run.of('checkpointKept')).toEqual([{ type: 'checkpointKept', periodic: true, figures }]);
    expect(messages(run)).toContain('periodic checkpoint complete in 500 ms (program frozen 120 ms, 1.0 MB); the program runs on');
    expect(run.exits).toEqual([]);
    expect(run.state.phase).toBe('running');
  });

  it("the scheduler's signal during a periodic checkpoint: the final one follows it, then exit 99", () => {
    const run = drive({ intervalMs: EVERY }, [
      ...fresh,
      [EVERY, { type: 'timer', name: 'interval' }],
      [EVERY + 100, { type: 'checkpointSignal' }],
      [EVERY + 500, { type: 'checkpointOk', figures }],
      [EVERY + 900, { type: 'programGone' }],
      [EVERY + 1000, { type: 'checkpointOk' }],
    ]);
    expect(run.of('requestCheckpoint').map((action) => action.type === 'requestCheckpoint' && action.leaveRunning)).toEqual([true, false]);
    expect(messages(run)).toContain('checkpoint signal received during a periodic checkpoint: the final one follows it');
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
  });

  it('a failed periodic checkpoint leaves the program running and the last complete checkpoint current; the next one is timed', () => {
    const run = drive({ intervalMs: EVERY }, [
      ...fresh,
      [EVERY, { type: 'timer', name: 'interval' }],
      [EVERY + 300, { type: 'dumpFailed', reason: 'criu said no' }],
      [2 * EVERY + 300, { type: 'timer', name: 'interval' }],
    ]);
    expect(run.of('requestCheckpoint')).toHaveLength(2);
    expect(messages(run)).toContain('periodic checkpoint failed: criu said no. The program keeps running; the last complete checkpoint stays the one to resume.');
    expect(run.exits).toEqual([]);
  });

  it('an interval that comes while a request is out asks nothing more, and times the next one', () => {
    const run = drive({ intervalMs: EVERY }, [
      ...fresh,
      [1000, { type: 'checkpointSignal' }],
      [EVERY, { type: 'timer', name: 'interval' }],
    ]);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.of('setTimer').filter((action) => action.type === 'setTimer' && action.name === 'interval')).toHaveLength(2);
  });

  it('the program that ends during a periodic checkpoint ends the job with its own code', () => {
    const run = drive({ intervalMs: EVERY }, [...fresh, [EVERY, { type: 'timer', name: 'interval' }], [EVERY + 50, { type: 'programExited', exitCode: 3 }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 3, outcome: 'finished', exitCode: 3 }]);
  });

  it("the final checkpoint's figures are said whichever comes first, checkpoint_ok or the program's end", () => {
    for (const order of [['checkpointOk', 'programGone'], ['programGone', 'checkpointOk']] as const) {
      const run = drive({}, [
        ...fresh,
        [1000, { type: 'checkpointSignal' }],
        ...order.map((type, i): [number, MachineEvent] => [1500 + i * 100, type === 'checkpointOk' ? { type, figures } : { type }]),
      ]);
      expect(messages(run).find((message) => message.startsWith('checkpoint complete'))).toBe(
        'checkpoint complete in 600 ms (program frozen 120 ms, 1.0 MB), program stopped; exit 99 so that the job is resubmitted',
      );
    }
  });

  it("a daemon that cannot leave the program running yet is asked again at each interval; periodic checkpoints start as soon as it can, said once each way", () => {
    const noHeartbeat = { ok: false as const, askAgain: true, why: 'no ckpt-daemon heartbeat /spool/ckpt-daemon.heartbeat' };
    const run = drive({ intervalMs: EVERY, periodicWhyNot: noHeartbeat.why }, [
      ...fresh,
      [EVERY, { type: 'timer', name: 'interval', periodic: noHeartbeat }],
      [2 * EVERY, { type: 'timer', name: 'interval', periodic: noHeartbeat }],
      [3 * EVERY, { type: 'timer', name: 'interval', periodic: { ok: true } }],
      [3 * EVERY + 400, { type: 'checkpointOk', figures }],
      [4 * EVERY, { type: 'timer', name: 'interval', periodic: { ok: true } }],
    ]);
    expect(run.of('requestCheckpoint')).toEqual([
      { type: 'requestCheckpoint', pid: 42, answerBy: 3 * EVERY + 295_000, leaveRunning: true },
      { type: 'requestCheckpoint', pid: 42, answerBy: 4 * EVERY + 295_000, leaveRunning: true },
    ]);
    // Timed at the start, again at each interval while the daemon cannot, and after the complete checkpoint.
    expect(run.of('setTimer').filter((action) => action.type === 'setTimer' && action.name === 'interval')).toHaveLength(4);
    const said = messages(run);
    expect(said.filter((message) => message.startsWith("--interval: the node's daemon can now leave the program running"))).toEqual([
      "--interval: the node's daemon can now leave the program running: periodic checkpoints start, every 60 s",
    ]);
    // The start said why not (the supervisor): the intervals after it say it only in the debug log.
    expect(run.actions.filter((action) => action.type === 'log' && action.level !== 'debug' && /no periodic checkpoint/.test(action.message))).toEqual([]);
    expect(run.state.config.periodicWhyNot).toBeUndefined();
  });

  it('a daemon that stops being able to (an older one put in its place) gets no periodic request: said once, and asked again', () => {
    const older = { ok: false as const, askAgain: true, why: 'no "leave-running" among the features' };
    const run = drive({ intervalMs: EVERY }, [
      ...fresh,
      [EVERY, { type: 'timer', name: 'interval', periodic: older }],
      [2 * EVERY, { type: 'timer', name: 'interval', periodic: older }],
    ]);
    expect(run.of('requestCheckpoint')).toEqual([]);
    const warned = run.actions.filter((action) => action.type === 'log' && action.level === 'warn');
    expect(warned).toEqual([
      { type: 'log', level: 'warn', message: `--interval: no periodic checkpoint for now: ${older.why}; asking again every 60 s: they start as soon as the daemon can (the scheduler's signal still checkpoints the program)` },
    ]);
    expect(run.state.phase).toBe('running');
  });

  it('without --interval no periodic timer is set', () => {
    const run = drive({}, fresh);
    expect(run.of('setTimer')).toEqual([]);
  });
});

/** --engine app (fake clock): the program saves itself on a signal and exits; app-link.ts publishes its agreed exit as checkpointOk + programGone, and names its options for the messages. */
const APP = { signal: 'SIGUSR2' as NodeJS.Signals, options: APP_EXIT_OPTIONS };
/** drive() with the app engine; LOGS: the messages of one level. */
function driveApp(config: Partial<MachineConfig>, events: Array<[number, MachineEvent]>) {
  const run = drive({ exitAnswers: APP, ...config }, events);
  const logs = (level: string): string[] => run.actions.flatMap((a) => (a.type === 'log' && a.level === level ? [a.message] : []));
  return { ...run, logs };
}
/** What app-link.ts makes of the agreed exit: the daemon protocol's answer. */
const saved = (at: number): Array<[number, MachineEvent]> => [
  [at, { type: 'checkpointOk' }],
  [at, { type: 'programGone' }],
];

describe('--engine app: the state machine', () => {
  it('saved: the signal asks the program to save (bounded by the grace), its agreed exit makes exit 99', () => {
    const run = driveApp({}, [...fresh, [1000, { type: 'checkpointSignal' }], ...saved(1800)]);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.of('setTimer')).toEqual([{ type: 'setTimer', name: 'dump', ms: DEFAULT_SAVE_GRACE_MS }]);
    expect(run.logs('info')).toContain('asking the program to save: SIGUSR2 to its process group (PID 42); waiting up to 60 s for it to exit');
    expect(run.logs('info')).toContain('the program saved its state and exited 800 ms after the signal; exit 99 so that the job is resubmitted');
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' }]);
  });

  it('saved, under OAR: exit 99 waits for --min-runtime (the 60-second rule); --max-restarts stops it instead', () => {
    const held = driveApp({ minRuntimeMs: 62_000 }, [...fresh, [10_000, { type: 'checkpointSignal' }], ...saved(11_000)]);
    expect(held.exits).toEqual([]);
    expect(held.of('setTimer')).toContainEqual({ type: 'setTimer', name: 'minRuntime', ms: 51_000 });
    expect(step(held.state, { type: 'timer', name: 'minRuntime' }, 62_000).actions).toContainEqual({ type: 'exit', code: 99, outcome: 'checkpointed' });
    const capped = driveApp({ restarts: 3, maxRestarts: 3 }, [...fresh, [1000, { type: 'checkpointSignal' }], ...saved(1500)]);
    expect(capped.exits).toEqual([{ type: 'exit', code: ExitCode.MaxRestarts, outcome: 'failed' }]);
  });

  it('finished: another exit after the signal is the program\'s own end, passed through', () => {
    const run = driveApp({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1200, { type: 'programExited', exitCode: 0 }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 0, outcome: 'finished', exitCode: 0 }]);
    expect(run.logs('info')).toContain('program exited with code 0 after the save signal: not the agreed code (--app-saved-code), so this is its own end');
    const unasked = driveApp({}, [...fresh, [1000, { type: 'programExited', exitCode: 85 }]]);
    expect(unasked.exits).toEqual([{ type: 'exit', code: 85, outcome: 'finished', exitCode: 85 }]);
  });

  it('a death by the save signal itself (not caught): its code, a failure that keeps the last save, never 99', () => {
    const run = driveApp({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1001, { type: 'programExited', exitCode: 128 + 12 }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: 140, outcome: 'failed' }]);
    expect(run.logs('error')[0]).toMatch(/^the program died of SIGUSR2, the save signal \(exit 140\): it does not catch it, so it saved nothing; not exiting 99/);
  });

  it('timeout: a program still running after the grace is killed and reported (exit 16), never a 99', () => {
    const run = driveApp({ exitAnswers: { ...APP, graceMs: 30_000 } }, [...fresh, [1000, { type: 'checkpointSignal' }], [31_000, { type: 'timer', name: 'dump' }]]);
    expect(run.of('setTimer')).toEqual([{ type: 'setTimer', name: 'dump', ms: 30_000 }]);
    expect(run.of('killProgram')).toHaveLength(1);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.AppTimeout, outcome: 'failed' }]);
    expect(run.logs('error')[0]).toMatch(/^the program did not exit within 30 s of SIGUSR2 \(bound: --app-grace\): killed; not exiting 99/);
    // Its exit as it dies of the kill changes nothing: the job has ended.
    expect(step(run.state, { type: 'programExited', exitCode: 137 }, 31_001).actions).toEqual([]);
  });

  it('gone without an exit status after the signal (killed from outside): exit 5 at once, never 99', () => {
    const run = driveApp({}, [...fresh, [1000, { type: 'checkpointSignal' }], [1500, { type: 'programGone' }]]);
    expect(run.exits).toEqual([{ type: 'exit', code: ExitCode.ProgramLost, outcome: 'failed' }]);
  });

  it('second signal: the program is asked once; the save still ends the job with 99', () => {
    const events: Array<[number, MachineEvent]> = [...fresh];
    for (let i = 0; i < 20; i++) events.push([1000 + i * 10, { type: 'checkpointSignal' }]);
    const run = driveApp({}, [...events, ...saved(2000)]);
    expect(run.of('requestCheckpoint')).toHaveLength(1);
    expect(run.logs('info').filter((message) => message.includes('a checkpoint is already in progress'))).toHaveLength(19);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('signal before start: the program is stopped as soon as it is known, no save signal, exit 99 (its saved state unchanged)', () => {
    const run = driveApp({}, [[0, { type: 'start', mode: 'resume' }], [1, { type: 'checkpointSignal' }], [3, { type: 'spawned', pid: 7 }]]);
    expect(run.of('spawn')).toHaveLength(1); // a resume starts the program again: no daemon
    expect(run.of('requestResume')).toEqual([]);
    expect(run.of('requestCheckpoint')).toEqual([]);
    expect(run.actions.filter((a) => a.type === 'watchProgram' || a.type === 'killProgram')).toEqual([{ type: 'watchProgram', pid: 7 }, { type: 'killProgram' }]);
    expect(run.exits).toEqual([{ type: 'exit', code: 99, outcome: 'checkpointed' }]);
  });

  it('the grace: --app-grace, or what the walltime leaves, never past the walltime margin; 60 s without either', () => {
    const config = { ...CONFIG, exitAnswers: APP, walltimeEndsAt: 720_000 };
    expect(saveGrace(config, APP, 600_000)).toEqual({ ms: 120_000 - ANSWER_MARGIN_MS, by: 'the walltime' });
    expect(saveGrace(config, { ...APP, graceMs: 30_000 }, 600_000)).toEqual({ ms: 30_000, by: '--app-grace' });
    expect(saveGrace(config, { ...APP, graceMs: 300_000 }, 600_000)).toEqual({ ms: 120_000 - ANSWER_MARGIN_MS, by: 'the walltime' });
    expect(saveGrace(config, APP, 719_000).ms).toBe(1000); // at least a second, even at the walltime
    expect(saveGrace({ ...CONFIG, exitAnswers: APP }, APP, 600_000)).toEqual({ ms: DEFAULT_SAVE_GRACE_MS, by: 'the default, --app-grace' });
    const run = driveApp({ walltimeEndsAt: 720_000 }, [...fresh, [600_000, { type: 'checkpointSignal' }], [715_000, { type: 'timer', name: 'dump' }]]);
    expect(run.logs('error')[0]).toMatch(/within 115 s of SIGUSR2 \(bound: the walltime\)/);
  });

  it('--interval with --app-periodic-signal: the periodic signal goes out, nothing is awaited, the next one is timed', () => {
    const run = driveApp({ exitAnswers: { ...APP, periodicSignal: 'SIGUSR1' }, intervalMs: 30_000 }, [...fresh, [30_000, { type: 'timer', name: 'interval' }]]);
    expect(run.of('requestCheckpoint')).toEqual([{ type: 'requestCheckpoint', pid: 42, answerBy: 30_000, leaveRunning: true }]);
    expect(run.logs('info')).toContain("periodic save: SIGUSR1 to the program's process group (PID 42); it runs on");
    expect(run.state.phase).toBe('running');
    expect(run.of('setTimer').filter((action) => action.type === 'setTimer' && action.name === 'interval')).toHaveLength(2);
  });
});

describe('the self-timed final checkpoint: the final timer (the plan: final-plan.test.ts)', () => {
  const GB = 1e9;
  const ASSUMED = ASSUMED_THROUGHPUT;
  const plan = planFinal({ walltimeEndsAt: 600_000, bytes: GB, throughput: ASSUMED, safety: 2 });
  const planned: MachineEvent = { type: 'finalPlanned', at: plan.at, walltimeEndsAt: plan.walltimeEndsAt, why: selfTimedReason(plan) };

  it('arms the final timer for the plan, re-arms it for a new one, and checkpoints when it fires with no signal; exit 99 as for the signal', () => {
    const later = { ...planned, at: plan.at - 30_000 };
    const run = drive({}, [...fresh, [1000, planned], [2000, later], [later.at, { type: 'timer', name: 'final' }], [later.at + 500, { type: 'programGone' }], [later.at + 900, { type: 'checkpointOk' }]]);
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
      ...fresh,
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
      ...fresh,
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
