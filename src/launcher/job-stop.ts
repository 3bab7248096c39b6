/**
 * Why the job is being stopped, decided at its first signal from what the scheduler says
 * (asked here, bounded) and the clock; logged, and written into the run record as soon as the
 * answer comes, so that a job killed later (OAR kills a besteffort job N s or more after its
 * preemption signal) keeps it. An answer that comes after the exit is lost with the job: the
 * record then says the clock's guess, pending, and the next job asks (completePast).
 */
import { answered, type StopFacts } from '../scheduler/stop-reason.js';
import type { RunState, StopReason } from '../state/run-state.js';
import { completeStop, stopRecord, type StopRecord, type StopSeen } from './decisions.js';
import type { LaunchSettings } from './launch-settings.js';

export interface JobStopOptions {
  settings: Pick<LaunchSettings, 'schedulerJobId' | 'pastStopFacts' | 'knownFacts' | 'stopFacts' | 'logger'>;
  /** The run record, whose last history entry is this job's. */
  run: RunState;
  /** The walltime's end as the machine knows it now: under Slurm it is learnt after the start (final-timing.ts). */
  walltimeEndsAt(): number | undefined;
  /** The job has ended: an answer that comes now changes nothing. */
  ended(): boolean;
  /** Saves the run record as it stands. */
  save(): void;
  /** Tells the checkpoint link the scheduler's word (a program that saves itself reads it). */
  tellReason(reason: StopReason): void;
}

export class JobStop {
  private stop?: { seen: StopSeen; answer?: StopFacts };

  constructor(private readonly options: JobStopOptions) {}

  /** At the first checkpoint or termination signal (later ones change nothing); GIVEN: what is already known for sure. */
  classify(signal: 'checkpoint' | 'terminate', given?: StopFacts): void {
    if (this.stop) return;
    const { settings, run } = this.options;
    const { schedulerJobId, pastStopFacts, knownFacts, stopFacts } = settings;
    const stop: { seen: StopSeen; answer?: StopFacts } = {
      seen: { signal, at: Date.now(), walltimeEndsAt: this.options.walltimeEndsAt(), schedulerJobId: pastStopFacts ? schedulerJobId : undefined },
    };
    this.stop = stop;
    const settle = (facts: StopFacts): void => {
      if (this.options.ended()) return;
      stop.answer = facts;
      const { reason } = stopRecord(stop.seen, facts);
      settings.logger.log('info', `this job stops for: ${reason} (${facts.said ? (facts.source ?? 'the scheduler says so') : 'from the time left and the job type'})`);
      const record = run.history[run.history.length - 1];
      record.reason = reason;
      delete record.reasonPending;
      this.options.save();
      this.options.tellReason(reason);
    };
    // What is already known for sure (e.g. no scheduler: a person) is not asked.
    const sure = given ?? (knownFacts?.said ? knownFacts : undefined);
    if (sure) return settle(sure);
    void (stopFacts?.() ?? Promise.resolve<StopFacts>({})).catch((): StopFacts => ({})).then(settle);
  }

  /** What the record says of the stop, as it stands now (undefined: no signal came). */
  now(): StopRecord | undefined {
    return this.stop && stopRecord(this.stop.seen, this.stop.answer, this.options.settings.knownFacts);
  }

  /**
   * The earlier jobs of the run that exited before the scheduler said why they stopped: asked
   * now, in the background (bounded, the job does not wait), and their records completed.
   */
  completePast(): void {
    const { settings, run } = this.options;
    const { pastStopFacts, logger } = settings;
    if (!pastStopFacts) return;
    run.history.forEach((record, index) => {
      const id = record.reasonPending?.schedulerJobId;
      if (id === undefined) return;
      void pastStopFacts(id)
        .catch((): StopFacts => ({}))
        .then((facts) => {
          if (this.options.ended() || !answered(facts)) return;
          run.history[index] = completeStop(run.history[index], facts);
          logger.log('info', `job ${record.jobId} stopped for: ${run.history[index].reason} (asked now: the scheduler had not answered before that job exited)`);
          this.options.save();
        });
    });
  }
}
