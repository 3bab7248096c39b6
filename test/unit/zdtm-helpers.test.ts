/** The zdtm suite's own logic (test/helpers/zdtm.ts): what a .desc allows, verdict lines, bisection. */
import { describe, expect, it } from 'vitest';
import { parseDesc, parseVerdicts, runBisected, skipReason, type BatchOutcome, type ZdtmTest } from '../helpers/zdtm.js';

const all = (): boolean => true;
const root = { asUser: false, lazy: false };
const user = { asUser: true, lazy: false };

describe('zdtm .desc files', () => {
  it('reads the quoted fields of the Python dict', () => {
    expect(parseDesc("{'flavor': 'h ns', 'flags': 'suid excl', 'opts': '--ghost-limit 1G'}")).toMatchObject({ flavor: ['h', 'ns'], flags: ['suid', 'excl'], opts: ['--ghost-limit', '1G'], feature: [] });
    expect(parseDesc('')).toMatchObject({ flags: [], flavor: [] });
  });

  it('skips what ckpt-run cannot give, with the reason', () => {
    expect(skipReason(parseDesc("{'flavor': 'ns uns'}"), root, all)).toBe('runs only in namespaces of its own (flavor ns uns)');
    expect(skipReason(parseDesc("{'flags': 'crfail'}"), root, all)).toMatch(/crfail/);
    expect(skipReason(parseDesc("{'opts': '--ghost-limit 1G'}"), root, all)).toBe('needs criu options ckpt-run does not give (--ghost-limit)');
    expect(skipReason(parseDesc("{'opts': '--file-locks --link-remap'}"), root, all)).toBeUndefined();
    expect(skipReason(parseDesc("{'feature': 'timerfd'}"), root, () => false)).toBe('criu feature missing here (timerfd)');
    expect(skipReason(parseDesc("{'flags': 'suid'}"), root, all)).toBeUndefined();
    expect(skipReason(parseDesc("{'flags': 'suid'}"), user, all)).toBe('needs root (suid)');
    expect(skipReason(parseDesc("{'flags': 'suid nolazy'}"), root, all)).toBeUndefined();
    expect(skipReason(parseDesc("{'flags': 'suid nolazy'}"), { asUser: false, lazy: true }, all)).toMatch(/lazy restore .*\(nolazy\)/);
  });
});

describe('zdtm batches', () => {
  it("reads the batch's verdict lines", () => {
    const verdicts = parseVerdicts('zdtm: 2 started\nzdtm pipe00 PASS\nzdtm poll FAIL 12:00: FAIL: poll.c:104: Delta is too big\n');
    expect([...verdicts]).toEqual([['pipe00', { pass: true, detail: '' }], ['poll', { pass: false, detail: '12:00: FAIL: poll.c:104: Delta is too big' }]]);
  });

  it('halves a batch whose C/R fails until the culprit is alone', async () => {
    const tests: ZdtmTest[] = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, command: `./${name}` }));
    const runs: string[][] = [];
    const run = async (batch: ZdtmTest[]): Promise<BatchOutcome> => {
      runs.push(batch.map((t) => t.name));
      if (batch.some((t) => t.name === 'd')) return { failure: 'criu dump: d refused' };
      return { verdicts: new Map(batch.map((t) => [t.name, { pass: true, detail: '' }])) };
    };
    const results = await runBisected(tests, run);
    expect(results.get('d')).toEqual({ pass: false, detail: 'criu dump: d refused' });
    expect(['a', 'b', 'c', 'e'].every((name) => results.get(name)?.pass)).toBe(true);
    expect(runs).toEqual([['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'c'], ['d', 'e'], ['d'], ['e']]);
  });
});
