/**
 * The supervisor's state machine: pure, no I/O, time given by the caller. The supervisor
 * (supervisor.ts) turns signals, file events, process exits and timers into events, and carries
 * out the actions returned, one event at a time.
 *
 *   fresh:  starting → running → checkpointing → (program gone + checkpoint_ok) → exit 99
 *   resume: resuming → (pidfile) → running → … → the program's own exit code
 *   periodic (--interval): running → checkpointing (the program runs on) → checkpoint_ok → running
 *   exit answers (the link's exitAnswers): starting → running → checkpointing (the
 *           program saves on a signal) → (its agreed exit, published as checkpoint_ok by the
 *           link) → exit 99; a resume starts it again
 *
 * The one rule that matters most: exit 99 (resubmit) only when a checkpoint completed since our
 * request (a new checkpoint_ok) AND the program is gone without an exit status of its own.
 *
 * Reading guide: the state is keyed by phase (a phase carries exactly what it needs, e.g. a
 * running program always has its PID), and each event has one handler in HANDLERS below. The
 * vocabulary (config, state, events, actions) is machine-state.ts; the checkpointing phase (a
 * request, its bound, its answer, the exit 99) is machine-checkpoint.ts.
 */
import { ExitCode } from '../base/exit-codes.js';
import { quoted } from '../base/words.js';
import { after, answerBy, duration, ended, failWith, log, signalNumber, unchanged, withRequest } from './machine-state.js';
import type { Handler, MachineAction, MachineEvent, MachineState, Step, Watched } from './machine-state.js';
import { checkpointDone, dumpTimedOut, figuresOf, keptWarnings, localStateLines, nextPeriodic, periodicIfDaemonCan, periodicOver, periodicSave, programKnown, requestCheckpoint, resubmit, saveTimedOut, walltimeLeft } from './machine-checkpoint.js';

/** One handler per event: what it means in each phase. Phases a handler does not name ignore the event. */
const HANDLERS: { [T in MachineEvent['type']]: Handler<T> } = {
  start(state, event, now) {
    if (state.phase !== 'starting') return unchanged(state);
    if (event.mode === 'fresh') return { state, actions: [{ type: 'spawn' }] };
    // A program that saves itself resumes by being started again: it finds its own state.
    if (state.config.exitAnswers) return { state, actions: [log('info', 'starting the program again: it resumes from the state it saved (CKPT_RUN_RESUMED=1)'), { type: 'spawn' }] };
    return {
      state: { ...state, phase: 'resuming' },
      actions: [
        { type: 'requestResume', answerBy: answerBy(now, state.config.resumeTimeoutMs) },
        { type: 'setTimer', name: 'resume', ms: state.config.resumeTimeoutMs },
      ],
    };
  },

  spawned(state, event, now) {
    if (state.phase !== 'starting') return unchanged(state);
    const known = programKnown(state, event.pid, now, []);
    if (!state.terminating) return known;
    // A termination signal came while the program was being started: it gets it now.
    return { state: known.state, actions: [...known.actions, { type: 'forwardSignal', signal: state.terminating }] };
  },

  spawnFailed(state, event) {
    if (state.phase !== 'starting') return unchanged(state);
    return ended(state, [log('error', `cannot start the program: ${event.reason}`)], { type: 'exit', code: ExitCode.NotExecutable, outcome: 'failed' });
  },

  restored(state, event, now) {
    if (state.phase !== 'resuming') return unchanged(state);
    return programKnown(state, event.pid, now, [
      { type: 'clearTimer', name: 'resume' },
      log('info', `program restored as PID ${event.pid}, running ${duration(now - state.startedAt)} after the job started`),
    ]);
  },

  restoreFailed(state, event, now) {
    // While running: a lazy restore whose memory never all came in (the daemon killed the tree).
    if (state.phase !== 'resuming' && !(state.phase === 'running' && !state.request)) return unchanged(state);
    const cleared: MachineAction[] = [{ type: 'clearTimer', name: 'resume' }];
    if (event.retryable) return after(cleared, resubmit(state, now, `restore failed (${quoted(event.reason)}); the checkpoint is intact`));
    return after(cleared, failWith(state, ExitCode.RestoreFailed, `restore failed: ${quoted(event.reason)}. The checkpoint is kept; fix the cause and submit again.`));
  },

  checkpointSignal(state, event, now) {
    switch (state.phase) {
      case 'starting':
      case 'resuming':
        return {
          state: { ...state, signalPending: true },
          actions: [log('info', 'checkpoint signal received before the program runs: will checkpoint as soon as it does')],
        };
      case 'checkpointing':
        if (state.request.periodic && !state.request.thenStop) {
          return {
            state: { ...state, request: { ...state.request, thenStop: true } },
            actions: [log('info', `checkpoint signal received${walltimeLeft(state, now)} during a periodic checkpoint: the final one follows it`)],
          };
        }
        return { state, actions: [log('info', 'checkpoint signal ignored: a checkpoint is already in progress')] };
      case 'running':
        return requestCheckpoint(state, now, [log('info', event.selfTimed ?? `checkpoint signal received${walltimeLeft(state, now)}`)]);
      case 'holding':
      case 'ended':
        return { state, actions: [log('debug', 'checkpoint signal ignored: the job is ending')] };
    }
  },

  finalPlanned(state, event, now) {
    // Once the final checkpoint is out (or done), a new plan changes nothing.
    if (state.phase === 'holding' || state.phase === 'ended' || (state.phase === 'checkpointing' && !state.request.periodic)) return unchanged(state);
    // Under Slurm the end comes from the scheduler after the start: the dumps' deadlines then know it too.
    const config = { ...state.config, walltimeEndsAt: state.config.walltimeEndsAt ?? event.walltimeEndsAt, finalWhy: event.why };
    return { state: { ...state, config }, actions: [{ type: 'setTimer', name: 'final', ms: Math.max(0, event.at - now) }] };
  },

  checkpointOk(state, event, now) {
    const asked = withRequest(state);
    if (!asked) return unchanged(state);
    const next = { ...asked, request: { ...asked.request, complete: true, figures: event.figures } };
    const done = checkpointDone(next, now);
    if (done || !next.request.periodic || next.programGone) return done ?? unchanged(next);
    return periodicOver(next, now, [
      log('info', `periodic checkpoint complete in ${figuresOf(now - next.request.at, event.figures)}; the program runs on`),
      ...keptWarnings(event.figures),
      { type: 'checkpointKept', periodic: true, figures: event.figures },
      ...localStateLines(event.figures),
    ]);
  },

  dumpFailed(state, event, now) {
    const asked = withRequest(state);
    if (!asked) return unchanged(state);
    if (asked.programGone) {
      // Nothing runs on and nothing was checkpointed: waiting would last until the walltime.
      const gone = `checkpoint failed: ${quoted(event.reason)}; the program is gone without an exit status, so nothing was saved and nothing runs on`;
      if (asked.terminating) return ended(asked, [log('error', gone)], { type: 'exit', code: 128 + signalNumber(asked.terminating), outcome: 'failed' });
      return after([{ type: 'clearTimer', name: 'dump' }], failWith(asked, ExitCode.ProgramLost, `${gone}; not exiting 99`));
    }
    const what = asked.request.periodic ? 'periodic checkpoint' : 'checkpoint';
    const failed = log(
      'error',
      event.program === 'frozen'
        ? `${what} failed: ${quoted(event.reason)}. The daemon reports the program STILL FROZEN: it does not run; ask the node's admin (ckpt-daemon --check).`
        : asked.request.periodic
          ? `${what} failed: ${quoted(event.reason)}. The program keeps running; the last complete checkpoint stays the one to resume.`
          : `${what} failed: ${quoted(event.reason)}. The program keeps running; the next checkpoint signal tries again.`,
    );
    if (asked.request.periodic) return periodicOver(asked, now, [failed]);
    return { state: { ...asked, phase: 'running', request: undefined }, actions: [{ type: 'clearTimer', name: 'dump' }, failed] };
  },

  daemonSilent(state, event) {
    if (state.phase === 'resuming') return failWith(state, ExitCode.DaemonAbsent, `${event.detail}; giving up the resume (the checkpoint is kept)`);
    if (state.phase !== 'checkpointing') return unchanged(state);
    return {
      // The request stays noted: should the daemon answer after all, its checkpoint counts.
      state: { ...state, phase: 'running' },
      actions: [{ type: 'clearTimer', name: 'dump' }, log('error', `${event.detail}; no checkpoint can be made, the program keeps running`)],
    };
  },

  programExited(state, event) {
    if (state.phase === 'holding' || state.phase === 'ended') return unchanged(state);
    const saving = state.config.exitAnswers;
    const asked = saving ? withRequest(state) : undefined;
    if (saving && asked && event.exitCode === 128 + signalNumber(saving.signal)) {
      // Not its own end, and nothing saved: the run stays resumable from the program's last save.
      return failWith(
        asked,
        event.exitCode,
        `the program died of ${saving.signal}, the save signal (exit ${event.exitCode}): it does not catch it, so it saved nothing; ` +
          `not exiting 99. Make it catch the signal (or choose the one it catches with ${saving.options.signal}); its last saved state, if any, is kept`,
      );
    }
    if (state.terminating && event.exitCode === 128 + signalNumber(state.terminating)) {
      // It died of the signal passed on: the job was stopped, the run did not end, and its
      // last checkpoint stays resumable (as when the tree is gone without a status).
      return ended(state, [log('info', `program stopped by ${state.terminating}`)], { type: 'exit', code: event.exitCode, outcome: 'failed' });
    }
    // After the save signal, an exit that the link did not take for "saved" is the program's own end.
    const notSaved = saving && asked ? ` after the save signal: not the agreed code (${saving.options.savedCode}), so this is its own end` : '';
    return ended(state, [log('info', `program exited with code ${event.exitCode}${notSaved}`)], {
      type: 'exit',
      code: event.exitCode,
      outcome: 'finished',
      exitCode: event.exitCode,
    });
  },

  programGone(state, _event, now) {
    if ((state.phase !== 'running' && state.phase !== 'checkpointing') || state.programGone) return unchanged(state);
    const next: Watched = { ...state, programGone: true };
    if (next.request && next.config.exitAnswers) {
      // The program's save is its exit status: gone without one, it was killed and saved nothing.
      return checkpointDone(next, now) ?? failWith(next, ExitCode.ProgramLost, 'the program disappeared without an exit status after the save signal (killed from outside?); not exiting 99');
    }
    if (next.request) {
      // A request past --dump-timeout gets the bound once more, now that the program is gone.
      const bound: MachineAction[] = next.request.late ? [{ type: 'setTimer', name: 'dump', ms: next.config.dumpTimeoutMs }] : [];
      return checkpointDone(next, now) ?? { state: next, actions: [log('debug', 'program stopped; waiting for the daemon to confirm the checkpoint'), ...bound] };
    }
    if (state.terminating) return ended(next, [], { type: 'exit', code: 128 + signalNumber(state.terminating), outcome: 'failed' });
    return failWith(next, ExitCode.ProgramLost, 'the program disappeared without an exit status and no checkpoint was made (killed from outside?); not exiting 99');
  },

  timer(state, event, now) {
    switch (event.name) {
      case 'interval':
        if (state.phase === 'checkpointing' || (state.phase === 'running' && state.request)) {
          return { state, actions: [log('debug', 'periodic checkpoint skipped: a request is still out'), ...nextPeriodic(state.config)] };
        }
        if (state.phase !== 'running') return unchanged(state);
        if (state.config.exitAnswers) return periodicSave(state, state.config.exitAnswers, now);
        return periodicIfDaemonCan(state, event.periodic ?? { ok: true }, now);
      case 'minRuntime':
        if (state.phase !== 'holding') return unchanged(state);
        return ended(state, [log('info', 'exit 99 so that the job is resubmitted')], { type: 'exit', code: ExitCode.Resubmit, outcome: 'checkpointed' });
      case 'resume':
        if (state.phase !== 'resuming') return unchanged(state);
        return failWith(
          state,
          ExitCode.ResumeTimeout,
          `resume timed out after ${duration(state.config.resumeTimeoutMs)}: no checkpoint/pidfile ` +
            'from the daemon (is ckpt-daemon running on this node? see --resume-timeout)',
        );
      case 'final':
        return HANDLERS.checkpointSignal(state, { type: 'checkpointSignal', selfTimed: state.config.finalWhy }, now);
      case 'dump':
        return state.config.exitAnswers ? saveTimedOut(state, state.config.exitAnswers, now) : dumpTimedOut(state, now, event.programState);
    }
  },

  terminate(state, event, now) {
    if (state.phase === 'holding' || state.phase === 'ended') return unchanged(state);
    if (event.preempted && !state.terminating && (state.phase === 'running' || state.phase === 'checkpointing')) {
      // The scheduler ends a preempted job (Slurm: KillWait before SIGKILL, then its own requeue):
      // the program is checkpointed, not stopped; a second signal is passed on to it.
      const checkpoint = HANDLERS.checkpointSignal(state, { type: 'checkpointSignal' }, now);
      const said = log('warn', `${event.signal} received from the scheduler, which ends this job for a preemption: checkpointing the program instead of stopping it`);
      return { state: checkpoint.state, actions: [said, ...checkpoint.actions] };
    }
    if (!state.terminating && state.phase === 'starting') {
      // The program is being started: leaving now would leave it running with no one to watch it.
      return {
        state: { ...state, terminating: event.signal },
        actions: [log('warn', `${event.signal} received while the program starts: passing it on as soon as it runs (send it again to leave at once)`)],
      };
    }
    if (state.terminating || state.phase === 'starting' || state.phase === 'resuming') {
      return ended(state, [log('warn', `${event.signal} received; exiting now`)], { type: 'exit', code: 128 + signalNumber(event.signal), outcome: 'failed' });
    }
    return {
      state: { ...state, terminating: event.signal },
      actions: [log('warn', `${event.signal} received: passing it to the program (send it again to leave at once)`), { type: 'forwardSignal', signal: event.signal }],
    };
  },
};

export function step(state: MachineState, event: MachineEvent, now: number): Step {
  return (HANDLERS[event.type] as Handler<MachineEvent['type']>)(state, event, now);
}
