/** criu's stats-dump image, read by hand for the frozen time. */
import { describe, expect, it } from 'vitest';
import { frozenMsOf } from '../../src/engine/criu/criu-stats.js';

/** The stats-dump that criu 4.2.1 wrote here for a dump of `sleep` (xxd of the real file). */
const REAL = Buffer.from('4059105506330957220000000a2008860510b35918eb06208f0128393000381e4000480050065806600068007000', 'hex');

describe('frozenMsOf', () => {
  it("reads DumpStatsEntry.frozen_time (µs) from a real stats-dump", () => {
    expect(frozenMsOf(REAL)).toBeCloseTo(11.443, 3);
  });

  it('says nothing for a file too short, truncated, or without the dump entry', () => {
    expect(frozenMsOf(Buffer.alloc(4))).toBeUndefined();
    expect(frozenMsOf(REAL.subarray(0, 16))).toBeUndefined();
    const restoreStats = Buffer.concat([REAL.subarray(0, 8), Buffer.from([2, 0, 0, 0, 0x12, 0])]); // field 2 (restore), empty
    expect(frozenMsOf(restoreStats)).toBeUndefined();
  });
});
