/**
 * When the simulated scheduler sends the checkpoint signal: counted from each job's start, but
 * --every from the moment the job's program runs (its restore, in a job that resumes).
 */
export type SignalSchedule =
  /** No checkpointSec: a scheduler that sends no signal; each job times its final checkpoint itself. */
  | { kind: 'walltime'; walltimeSec: number; checkpointSec?: number }
  | { kind: 'every'; everySec: number }
  | { kind: 'manual' };

/** Seconds after a job's start at which to signal it; undefined: only by hand. */
export function signalDelaySec(schedule: SignalSchedule): number | undefined {
  switch (schedule.kind) {
    case 'walltime':
      return schedule.checkpointSec === undefined ? undefined : schedule.walltimeSec - schedule.checkpointSec;
    case 'every':
      return schedule.everySec;
    case 'manual':
      return undefined;
  }
}

export function describeSchedule(schedule: SignalSchedule): string {
  switch (schedule.kind) {
    case 'walltime':
      return schedule.checkpointSec === undefined
        ? `walltime ${schedule.walltimeSec} s, no checkpoint signal: each job times its final checkpoint itself`
        : `walltime ${schedule.walltimeSec} s, checkpoint signal ${schedule.checkpointSec} s before it`;
    case 'every':
      return `checkpoint signal ${schedule.everySec} s after each job's program runs (started, or restored)`;
    case 'manual':
      return 'checkpoint signals only by hand';
  }
}
