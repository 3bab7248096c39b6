/**
 * The machine's checkpointing phase (machine.ts hands its events here): a request out and its
 * bound, periodic checkpoints, the answer (complete, failed, unanswered) and the exit 99 that
 * a complete one leads to. Pure, like the machine.
 */
import { ExitCode } from '../base/exit-codes.js';
import { formatMegabytes } from '../base/sizes.js';
import { plural } from '../base/words.js';
import { describeCarried, describeLeft, describeStays } from '../protocol/local-state.js';
import { after, answerBy, ANSWER_MARGIN_MS, DEFAULT_SAVE_GRACE_MS, duration, ended, failWith, log, unchanged, withRequest } from './machine-state.js';
import type { CheckpointFigures, CheckpointRequest, InPhase, MachineAction, MachineConfig, MachineState, Step, Watched } from './machine-state.js';
import type { ExitAnswers, PeriodicAnswer } from '../engine/link.js';

/** What /proc says of the program when the daemon does not answer: the truth, not a guess. */
function programNow(state: string | undefined): string {
  if (state === 't' || state === 'T') {
    return `the program is STOPPED (state ${state}: a criu that is still running holds it frozen); the next checkpoint signal asks again, ask the node's admin (ckpt-daemon --check)`;
  }
  return 'the program is running; the next checkpoint signal asks again';
}

/**
 * How long a program that saves itself may take to exit: its engine's grace, else what the
 * walltime leaves (else DEFAULT_SAVE_GRACE_MS), and never past the walltime's margin: a program
 * still saving then is killed with the job, and the job must say so before.
 */
export function saveGrace(config: MachineConfig, saving: ExitAnswers, now: number): { ms: number; by: string } {
  const walltimeBound = config.walltimeEndsAt === undefined ? Infinity : config.walltimeEndsAt - ANSWER_MARGIN_MS - now;
  const wanted = saving.graceMs ?? (config.walltimeEndsAt === undefined ? DEFAULT_SAVE_GRACE_MS : Infinity);
  const grace = saving.options.grace;
  const by = walltimeBound <= wanted ? 'the walltime' : saving.graceMs === undefined ? `the default, ${grace}` : grace;
  return { ms: Math.max(1000, Math.min(wanted, walltimeBound)), by };
}

/**
 * Sends the checkpoint request for a running program and arms its bound (the dump's, or the
 * program's own save); PERIODIC: a dump after which it runs on.
 */
export function requestCheckpoint(state: InPhase<'running'>, now: number, actions: MachineAction[], periodic = false): Step {
  const { pid, programGone, config, startedAt, terminating } = state;
  const boundMs = config.exitAnswers ? saveGrace(config, config.exitAnswers, now).ms : config.dumpTimeoutMs;
  return {
    state: { phase: 'checkpointing', config, startedAt, terminating, pid, programGone, request: { at: now, complete: false, periodic } },
    actions: [
      ...actions,
      // Said once the request is out (or the signal sent): whoever reads the log finds it there.
      { type: 'requestCheckpoint', pid, answerBy: answerBy(now, boundMs, config.walltimeEndsAt), leaveRunning: periodic },
      log(
        'info',
        config.exitAnswers
          ? `asking the program to save: ${config.exitAnswers.signal} to its process group (PID ${pid}); waiting up to ${duration(boundMs)} for it to exit`
          : periodic
            ? `periodic checkpoint requested for PID ${pid} (it runs on)`
            : `checkpoint requested for PID ${pid}`,
      ),
      { type: 'setTimer', name: 'dump', ms: boundMs },
    ],
  };
}

/**
 * A periodic save of a program that saves itself (--interval, its periodic signal): the signal
 * goes out and nothing is awaited (the program saves and runs on, unconfirmed); the next one is timed.
 */
export function periodicSave(state: InPhase<'running'>, saving: ExitAnswers, now: number): Step {
  return {
    state,
    actions: [
      log('info', `periodic save: ${saving.periodicSignal} to the program's process group (PID ${state.pid}); it runs on`),
      { type: 'requestCheckpoint', pid: state.pid, answerBy: now, leaveRunning: true },
      ...nextPeriodic(state.config),
    ],
  };
}

/** Why a job with --interval makes no periodic checkpoint for now, and that it asks again. */
export const noPeriodicYet = (why: string, intervalMs: number): string =>
  `--interval: no periodic checkpoint for now: ${why}; asking again every ${duration(intervalMs)}: they start as soon as the daemon can (the scheduler's signal still checkpoints the program)`;

/**
 * The interval is up and nothing is out: a periodic checkpoint if the node's daemon can leave
 * the program running now (asked at each interval: a daemon restarting when the job started
 * has no heartbeat for a while), else the next question is timed. Each change is logged once.
 */
export function periodicIfDaemonCan(state: InPhase<'running'>, can: PeriodicAnswer, now: number): Step {
  const { periodicWhyNot, intervalMs = 0 } = state.config;
  if (!can.ok) {
    const config = { ...state.config, periodicWhyNot: can.why };
    const said =
      periodicWhyNot === undefined
        ? log('warn', noPeriodicYet(can.why, intervalMs))
        : log('debug', `--interval: still no periodic checkpoint: ${can.why}`);
    return { state: { ...state, config }, actions: [said, ...nextPeriodic(config)] };
  }
  const config = { ...state.config, periodicWhyNot: undefined };
  const started = periodicWhyNot === undefined ? [] : [log('info', `--interval: the node's daemon can now leave the program running: periodic checkpoints start, every ${duration(intervalMs)}`)];
  return requestCheckpoint({ ...state, config }, now, started, true);
}

/** The next periodic checkpoint's timer (--interval), when there are periodic checkpoints. */
export const nextPeriodic = (config: MachineConfig): MachineAction[] =>
  config.intervalMs === undefined ? [] : [{ type: 'setTimer', name: 'interval', ms: config.intervalMs }];

/** "1.2 s (program frozen 340 ms, 12.0 MB)": how long a checkpoint took, and what the daemon said of it. */
export function figuresOf(ms: number, figures: CheckpointFigures | undefined): string {
  const frozen = figures?.frozenMs === undefined ? [] : [`program frozen ${duration(figures.frozenMs)}`];
  const size = figures?.bytes === undefined ? [] : [formatMegabytes(figures.bytes)];
  const kept = figures?.kept;
  const files = kept && kept.files > 0 ? [`content of ${kept.files} open file(s) kept: ${formatMegabytes(kept.bytes)} written in ${duration(kept.ms)} while frozen`] : [];
  const said = [...frozen, ...size, ...files];
  return said.length === 0 ? duration(ms) : `${duration(ms)} (${said.join(', ')})`;
}

/**
 * What of the program's node-local files travelled, what cannot, and what its user made there
 * that did not (said at the checkpoint, not at a failed resume).
 */
export function localStateLines(figures: CheckpointFigures | undefined): MachineAction[] {
  const state = figures?.localState;
  if (!state) return [];
  const carried = describeCarried(state);
  const warnings = [describeStays(state), describeLeft(state)].filter((line) => line !== undefined);
  return [...(carried ? [log('info', `node-local files carried with the checkpoint: ${carried}`)] : []), ...warnings.map((line) => log('warn', line))];
}

/** The files whose content a checkpoint could not keep, named: a crash before the next checkpoint cannot put them back. */
export function keptWarnings(figures: CheckpointFigures | undefined): MachineAction[] {
  const kept = figures?.kept;
  if (!kept) return [];
  const over = kept.over.map((path) => log('warn', `${path} is over the bound of content kept per checkpoint (ckpt-daemon --keep-files-max, ${formatMegabytes(kept.max)}): only its checksum is kept, and a resume after a crash refuses to go on if it changed`));
  const unreadable = kept.unreadable.map((path) => log('warn', `${path} is open for writing but you may not read it: its content is not kept, a crash cannot put it back`));
  return [...over, ...unreadable];
}

/**
 * A periodic checkpoint is over (complete, failed or unanswered): the program runs on and the
 * next one is timed; the scheduler's signal that came meanwhile is served now.
 */
export function periodicOver(state: Watched, now: number, actions: MachineAction[], request?: CheckpointRequest): Step {
  const running: InPhase<'running'> = { ...state, phase: 'running', request };
  const more: MachineAction[] = [{ type: 'clearTimer', name: 'dump' }, ...actions, ...nextPeriodic(state.config)];
  if (!state.request?.thenStop) return { state: running, actions: more };
  return requestCheckpoint({ ...running, request: undefined }, now, [...more, log('info', 'now the final checkpoint, for the signal that came during the periodic one')]);
}

/** The program's root PID is known (spawned or restored): watch it, serve a pending signal. */
export function programKnown(state: InPhase<'starting' | 'resuming'>, pid: number, now: number, actions: MachineAction[]): Step {
  const running: InPhase<'running'> = { phase: 'running', config: state.config, startedAt: state.startedAt, terminating: state.terminating, pid, programGone: false };
  const watched: MachineAction[] = [...actions, { type: 'watchProgram', pid }, ...nextPeriodic(state.config)];
  if (!state.signalPending) return { state: running, actions: watched };
  if (state.config.exitAnswers) {
    // It cannot have set up its signal handler yet: the save signal would kill it, and its exit
    // would pass for its own end. It has done no work worth saving: stop it, run it again later.
    return after(
      [...watched, { type: 'killProgram' }],
      resubmit(running, now, 'the checkpoint signal came before the program ran: stopped it at once, its saved state (if any) unchanged'),
    );
  }
  return requestCheckpoint(running, now, [...watched, log('info', 'serving the checkpoint signal that arrived before the program was running')]);
}

/** Exit 99 once the job has run long enough for the scheduler to resubmit it. */
export function resubmit(state: MachineState, now: number, reason: string): Step {
  const { restarts, maxRestarts, minRuntimeMs } = state.config;
  if (restarts >= maxRestarts) {
    return failWith(
      state,
      ExitCode.MaxRestarts,
      `${reason}, but this run was already resubmitted ${plural(restarts, 'time')} (--max-restarts ` +
        `${maxRestarts}): not exiting 99. The checkpoint is kept: to resume it, submit the ` +
        `job again with a higher --max-restarts.`,
    );
  }
  const remaining = state.startedAt + minRuntimeMs - now;
  if (remaining > 0) {
    return {
      state: { config: state.config, startedAt: state.startedAt, terminating: state.terminating, phase: 'holding' },
      actions: [
        log(
          'info',
          `${reason}; waiting ${duration(remaining)} before exit 99: the scheduler resubmits ` +
            `only jobs that ran more than ${duration(Math.max(0, minRuntimeMs - 2000))} (--min-runtime)`,
        ),
        { type: 'setTimer', name: 'minRuntime', ms: remaining },
      ],
    };
  }
  return ended(state, [log('info', `${reason}; exit 99 so that the job is resubmitted`)], { type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' });
}

export const walltimeLeft = (state: MachineState, now: number): string =>
  state.config.walltimeEndsAt === undefined ? '' : ` (the walltime ends in ${duration(state.config.walltimeEndsAt - now)})`;

/**
 * A dump that takes more than half of what the walltime left when it was asked for is close to
 * being killed with the job: a bigger state, a busier filesystem, and the work since the
 * previous checkpoint is lost. The job cannot read the --checkpoint delay, only the walltime.
 */
export function walltimeMargin(config: MachineConfig, requestedAt: number, dumpMs: number): MachineAction[] {
  const { walltimeEndsAt } = config;
  if (walltimeEndsAt === undefined) return [];
  const leftMs = walltimeEndsAt - requestedAt;
  if (leftMs <= 0 || dumpMs <= leftMs / 2) return [];
  return [
    log(
      'warn',
      `the dump took ${duration(dumpMs)} of the ${duration(leftMs)} left before the walltime when it was asked for: ` +
        `a dump still running at the walltime is killed with the job, and the work since the previous checkpoint ` +
        `is lost. Leave it more time: the checkpoint signal ${Math.ceil((2 * dumpMs) / 1000)} s or more before the walltime ` +
        `(OAR: oarsub --checkpoint; Slurm: sbatch --signal=B:USR2@)`,
    ),
  ];
}

/** Exit 99 iff the program is gone and a checkpoint completed after our request; else undefined. */
export function checkpointDone(state: Watched, now: number): Step | undefined {
  const { request } = state;
  if (!state.programGone || !request?.complete) return undefined;
  const { figures } = request;
  const dumpMs = now - request.at;
  if (state.config.exitAnswers) return after([{ type: 'clearTimer', name: 'dump' }], resubmit(state, now, `the program saved its state and exited ${duration(dumpMs)} after the signal`));
  const done = resubmit(state, now, `checkpoint complete in ${figuresOf(dumpMs, figures)}, program stopped`);
  return after(
    [{ type: 'clearTimer', name: 'dump' }, { type: 'checkpointKept', periodic: false, figures }, ...localStateLines(figures), ...keptWarnings(figures), ...walltimeMargin(state.config, request.at, dumpMs)],
    done,
  );
}

/** The program did not exit within its bound after the save signal: killed, never a 99. */
export function saveTimedOut(state: MachineState, saving: ExitAnswers, now: number): Step {
  const asked = withRequest(state);
  if (!asked) return unchanged(state);
  const { by } = saveGrace(asked.config, saving, asked.request.at);
  return after(
    [{ type: 'killProgram' }],
    failWith(
      asked,
      ExitCode.AppTimeout,
      `the program did not exit within ${duration(now - asked.request.at)} of ${saving.signal} (bound: ${by}): killed; not exiting 99. ` +
        `Does it catch ${saving.signal} and exit with the agreed code? Its last saved state, if any, is kept; give it more time with ${saving.options.grace} and the scheduler's checkpoint lead`,
    ),
  );
}

/** --dump-timeout passed with the request unanswered; PROGRAMSTATE is what /proc says of the program then. */
export function dumpTimedOut(state: MachineState, now: number, programState: string | undefined): Step {
  const asked = withRequest(state);
  if (!asked) return unchanged(state);
  if (asked.programGone) {
    return failWith(
      asked,
      ExitCode.ProgramLost,
      `the program stopped but the daemon did not confirm the checkpoint within ` +
        `${duration(asked.config.dumpTimeoutMs)} (no new checkpoint_ok); not exiting 99`,
    );
  }
  const warning = log(
    'warn',
    `the daemon has not answered the dump request after ${duration(asked.config.dumpTimeoutMs)} ` +
      `(--dump-timeout; ckpt-daemon answers before it, so this node's daemon is another one or stuck): ${programNow(programState)}`,
  );
  // A late checkpoint_ok still counts: the request stays noted, as late.
  const late = { ...asked.request, late: true };
  if (asked.request.periodic) return periodicOver(asked, now, [warning], late);
  return { state: { ...asked, phase: 'running', request: late }, actions: [warning] };
}
