/** The dry run's table: a lazy restore shows when the program ran and when its memory was all in. */
import { describe, expect, it } from 'vitest';
import { formatSummary, type SimulationSummary } from '../../src/simulate/summary.js';

const summary = (restore: { restoreMs?: number; allInMs?: number }): SimulationSummary => ({
  engine: 'criu',
  command: ['prog'],
  cycles: [
    { jobId: 'sim-1', runSec: 4.2, dumpMs: 510, imageBytes: 2_147_483_648, exitCode: 99, endedBy: 'checkpoint (exit 99)', finished: false },
    { jobId: 'sim-2', runSec: 1.5, ...restore, exitCode: 7, endedBy: 'program exited (code 7)', finished: true },
  ],
  checkpoints: 1,
  verdict: 'the program finished with exit code 7 after 1 checkpoints.',
  ok: true,
  exitCode: 7,
});

describe('formatSummary', () => {
  it('shows a lazy restore as running after X, all in after Y; a full one as one time', () => {
    const lazy = formatSummary(summary({ restoreMs: 253, allInMs: 678 }));
    expect(lazy).toMatch(/^2 +sim-2 +1\.5 s +- +- +253 ms \(all in 678 ms\) +program exited \(code 7\)$/m);
    expect(lazy).toMatch(/^1 +sim-1 +4\.2 s +510 ms +2147\.5 MB +- +checkpoint \(exit 99\)$/m);
    const full = formatSummary(summary({ restoreMs: 5620 }));
    expect(full).toMatch(/^2 +sim-2 +1\.5 s +- +- +5620 ms +program exited \(code 7\)$/m);
  });
});
