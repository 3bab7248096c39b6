/** The schedulers' and engines' registries, and the end of a job's pure part: who is found, in which order, with which traits. */
import { describe, expect, it } from 'vitest';
import { DAEMON_ENGINES } from '../../src/engine/daemon-registry.js';
import { APP_OPTIONS } from '../../src/engine/app/app-options.js';
import type { EngineOption } from '../../src/engine/options.js';
import { chooseEngine, ENGINES } from '../../src/engine/registry.js';
import { pendingStopLine } from '../../src/launcher/end-of-job.js';
import { detectScheduler, NODE_SIDES, SCHEDULERS } from '../../src/scheduler/registry.js';
import { NO_SCHEDULER } from '../../src/scheduler/scheduler.js';
import { SIMULATED_STOP_ENV } from '../../src/scheduler/simulated.js';

describe('the scheduler registry', () => {
  it('tries OAR, then Slurm, then the dry run, and says none without any', () => {
    expect(SCHEDULERS.map((scheduler) => scheduler.name)).toEqual(['OAR', 'Slurm', 'simulated']);
    expect(detectScheduler({ OAR_JOB_ID: '5', SLURM_JOB_ID: '6' }, process.ppid).name).toBe('OAR');
    expect(detectScheduler({ SLURM_JOB_ID: '6' }, process.ppid).jobId).toBe('slurm-6-0');
    expect(detectScheduler({ OAR_JOB_ID: '', [SIMULATED_STOP_ENV]: '/nonexistent' }, process.ppid).knownFacts).toBeUndefined();
    expect(detectScheduler({}, process.ppid)).toBe(NO_SCHEDULER);
  });

  it("asks only OAR's node side about a job's owner and cgroups (Slurm's are left as they are)", () => {
    expect(NODE_SIDES.map(({ name }) => name)).toEqual(['OAR']);
  });
});

describe('the engine registry', () => {
  it("names ckpt-run's engines with what the job must know of them", () => {
    expect(Object.keys(ENGINES)).toEqual(['criu', 'app']);
    expect(ENGINES.criu.usesDaemon).toBe(true);
    expect(ENGINES.app.usesDaemon).toBe(false);
    expect(ENGINES.criu.programEnvironment({ A: '1' }, {} as never, {} as never, true)).toEqual({ A: '1' });
  });

  it("binds the engine's settings from its own options, and refuses another engine's options (exit 2)", () => {
    const job = { checkpointSignal: 'SIGUSR2' as NodeJS.Signals, interval: false };
    const given = (values: Array<[EngineOption, number | true]>) => (option: EngineOption) => new Map(values).get(option);
    const none = given([]);
    expect(chooseEngine('app', none, job)).toMatchObject({ name: 'app', usesDaemon: false });
    expect(chooseEngine('criu', none, job)).toMatchObject({ name: 'criu', usesDaemon: true });
    const grace = given([[APP_OPTIONS.grace, 5], [APP_OPTIONS.anyExitSaved, true]]);
    expect(() => chooseEngine('criu', grace, job)).toThrow('--app-any-exit-saved, --app-grace: only with --engine app (add it, or drop the option)');
    expect(() => chooseEngine('app', given([[APP_OPTIONS.savedCode, 300]]), job)).toThrow('--app-saved-code 300: an exit code is 0 to 255');
  });
});

describe("the daemon's engine registry", () => {
  it('names ckpt-daemon\'s engines, CRIU first (the default, and the dry run\'s first choice for auto)', () => {
    expect(Object.keys(DAEMON_ENGINES)).toEqual(['criu', 'restart']);
    expect(DAEMON_ENGINES.criu.title).toBe('real CRIU');
    expect(DAEMON_ENGINES.restart.about).toBe('no CRIU: starts the program again, keeps no memory state');
  });
});

describe('the end of a job', () => {
  it('says when the record holds the clock\'s guess, and whether the next job completes it', () => {
    expect(pendingStopLine(undefined)).toBeUndefined();
    expect(pendingStopLine({ reason: 'walltime' })).toBeUndefined();
    expect(pendingStopLine({ reason: 'walltime', reasonPending: { signal: 'checkpoint', at: '2026-01-01T00:00:00.000Z', schedulerJobId: '7' } })).toBe(
      'the scheduler has not said yet why this job stops: the record says walltime, from the clock; the next job asks the scheduler and completes it',
    );
    expect(pendingStopLine({ reason: 'manual', reasonPending: { signal: 'terminate', at: '2026-01-01T00:00:00.000Z' } })).toMatch(/; it stays the clock's guess$/);
  });
});
