/**
 * The daemon's check of a tree's powers on a fake /proc whose members vanish between the listing
 * and the reading, as a shell loop's children do: a member gone, a thread gone, a zombie, a
 * process exiting (its /proc then shows as root's) are no finding; real extra powers still are.
 */
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memberWithExtraPowers, readMember } from '../../src/daemon/process-powers.js';
import type { Requester } from '../../src/protocol/spool-request.js';

// The kernel gives /proc/PID/status the process's owner while it is dumpable: the fake one is
// the requester's (as root, chowned to a stranger; otherwise the requester is whoever runs this).
const AS_ROOT = process.getuid?.() === 0;
const user: Requester = { uid: AS_ROOT ? 4242 : (process.getuid?.() as number), gid: 4242, gids: [4242], name: 'alice' };

let proc: string;
afterEach(() => rmSync(proc, { recursive: true, force: true }));

interface FakeThread {
  uid?: number;
  capEff?: string;
  /** Listed in task/ but its status gone (the thread exited in between). */
  gone?: boolean;
}

function fakeProcess(
  pid: number,
  { state = 'S', threads = [{}], memory = true, dumpable = true }: { state?: string; threads?: FakeThread[]; memory?: boolean; dumpable?: boolean } = {},
): void {
  const status = (thread: FakeThread): string =>
    [
      `Name:\tsh`,
      `State:\t${state}`,
      `Uid:\t${[0, 1, 2, 3].map(() => thread.uid ?? user.uid).join('\t')}`,
      `Gid:\t4242\t4242\t4242\t4242`,
      'Groups:\t4242',
      ...(memory ? ['VmSize:\t  2000 kB'] : []),
      'CapPrm:\t0000000000000000',
      `CapEff:\t${thread.capEff ?? '0000000000000000'}`,
      'CapAmb:\t0000000000000000',
    ].join('\n');
  mkdirSync(join(proc, String(pid), 'task'), { recursive: true });
  writeFileSync(join(proc, String(pid), 'stat'), `${pid} (sh (x)) ${state} 1 ${pid} ${pid} 0 -1 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0`);
  writeFileSync(join(proc, String(pid), 'status'), status(threads[0]));
  if (AS_ROOT && dumpable) chownSync(join(proc, String(pid), 'status'), user.uid, user.gid);
  threads.forEach((thread, index) => {
    const dir = join(proc, String(pid), 'task', String(pid + index));
    mkdirSync(dir);
    if (!thread.gone) writeFileSync(join(dir, 'status'), status(thread));
  });
}

describe('the powers of a tree whose members come and go', () => {
  it('skips a member listed but gone, a thread gone, a zombie and an exiting process', () => {
    proc = mkdtempSync(join(tmpdir(), 'fake-proc-'));
    fakeProcess(10);
    // 11: listed by its parent, exited before it was read (no /proc/11 at all).
    fakeProcess(12, { threads: [{}, { gone: true }] });
    fakeProcess(13, { state: 'Z', threads: [{ uid: 0 }] });
    fakeProcess(14, { memory: false, threads: [{ uid: 0 }] });
    expect(readMember(11, proc)).toBeUndefined();
    expect(readMember(12, proc)?.threads).toHaveLength(1);
    expect(readMember(13, proc)).toBeUndefined();
    expect(readMember(14, proc)).toBeUndefined();
    // 13 and 14 show uid 0, and their status files are root's: no finding, they carry no memory.
    expect(memberWithExtraPowers([10, 11, 12, 13, 14], user, proc)).toBeUndefined();
  });

  it('still finds real extra powers among vanishing members', () => {
    proc = mkdtempSync(join(tmpdir(), 'fake-proc-'));
    fakeProcess(20);
    fakeProcess(22, { threads: [{}, { capEff: '0000000000002000' }] });
    fakeProcess(23, { threads: [{ uid: 0 }] });
    expect(memberWithExtraPowers([21, 23], user, proc)).toEqual({ pid: 23, powers: 'runs as uid 0/0/0/0' });
    expect(memberWithExtraPowers([21, 22], user, proc)).toEqual({ pid: 22, powers: 'has capabilities (CapEff 0000000000002000)' });
  });

  it.runIf(AS_ROOT)('finds a live member whose /proc is root\'s (it lost its "dumpable" flag)', () => {
    proc = mkdtempSync(join(tmpdir(), 'fake-proc-'));
    fakeProcess(25, { dumpable: false });
    expect(memberWithExtraPowers([24, 25], user, proc)).toEqual({ pid: 25, powers: 'is not dumpable (it ran a setuid or setgid program)' });
  });

  it('gives root every power, through the same reads', () => {
    proc = mkdtempSync(join(tmpdir(), 'fake-proc-'));
    fakeProcess(40, { threads: [{ uid: 0, capEff: '000001ffffffffff' }] });
    expect(readMember(40, proc)).toBeDefined();
    expect(memberWithExtraPowers([39, 40], { uid: 0, gid: 0, gids: [0], name: 'root' }, proc)).toBeUndefined();
  });
});
