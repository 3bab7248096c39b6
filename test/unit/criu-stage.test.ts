/**
 * Where a criu dump stands, from its log: lines taken from real -v4 dump logs of criu 4.1.1 (the
 * stall at the breakpoint step, on a Firecracker VM) and 4.2.1 (a complete dump).
 */
import { describe, expect, it } from 'vitest';
import { dumpProgress, safeToKill, stalledAtBreakpoint } from '../../src/engine/criu/criu-stage.js';

const SEIZED = ['(00.036145) Seized task 2287, state 1'];
const INFECTED = [...SEIZED, '(00.042038) Putting parasite blob into 0x7f4406300000->0x7f544b008000', 'pie: 2287: Running daemon thread leader', '(00.042474) Parasite 2287 has been switched to daemon mode'];
const STALLED = [
  ...INFECTED,
  '(00.044954) Waiting for 2287 to trap',
  '(00.044960) Daemon 2287 exited trapping',
  '(00.044968) Sent msg to daemon 3 0 0',
  'pie: 2287: 2287: new_sp=0x7f544b011408 ip 0x7f544b14c503',
];
const CURED = [...STALLED, '(00.045287) 2287 (native) is going to execute the syscall 15, required is 15', '(00.045309) 2287 was stopped', '(00.045509) Dumping mm (pid: 2287)'];

const at = (lines: string[]) => dumpProgress(`${lines.join('\n')}\n`);

describe('dumpProgress', () => {
  it('follows the stages of a dump and names criu\'s own last line, not the parasite\'s', () => {
    expect(at([]).stage).toBe('starting');
    expect(at(SEIZED).stage).toBe('seized');
    expect(at(INFECTED).stage).toBe('parasite');
    expect(at(STALLED)).toEqual({ stage: 'curing', lastLine: '(00.044968) Sent msg to daemon 3 0 0' });
    expect(at(CURED).stage).toBe('traced');
    expect(at([...CURED, '(00.050000) Dumping finished successfully']).stage).toBe('finished');
  });

  it('goes back to the parasite stage when the next task of the tree is infected', () => {
    expect(at([...CURED, '(00.046000) Putting parasite blob into 0x1->0x2']).stage).toBe('parasite');
  });

  it('kills criu only where every task can go on, and tells a breakpoint stall', () => {
    expect(safeToKill('parasite')).toBe(false);
    for (const stage of ['starting', 'seized', 'curing', 'traced', 'finished'] as const) expect(safeToKill(stage)).toBe(true);
    expect(stalledAtBreakpoint(at(STALLED))).toBe(true);
    expect(stalledAtBreakpoint(at(CURED))).toBe(false);
  });
});
