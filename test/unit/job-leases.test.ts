/** The daemon's leases on restored trees (daemon/job-leases.ts), with a fake clock and stand-in processes. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { JobLeases, type Lease } from '../../src/daemon/job-leases.js';

/** A process that no kill can reach (beyond pid_max): the lease's SIGKILL finds nothing. */
const process_ = (pid: number) => {
  let alive = true;
  return { pid, isAlive: () => alive, end: () => (alive = false) };
};

describe('JobLeases', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function held(): { leases: JobLeases; expired: Array<[string, number]>; job: ReturnType<typeof process_>; root: ReturnType<typeof process_> } {
    const expired: Array<[string, number]> = [];
    const leases = new JobLeases((lease: Lease, killed) => expired.push([lease.jobId, killed]), 1000);
    const job = process_(90_000_001);
    const root = process_(90_000_002);
    leases.hold({ jobId: 'j2', job, root });
    return { leases, expired, job, root };
  }

  it('kills the tree at the first look after its job ended, once', () => {
    const { leases, expired, job } = held();
    vi.advanceTimersByTime(5000);
    expect(expired).toEqual([]);
    job.end();
    vi.advanceTimersByTime(999);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual([['j2', 1]]);
    vi.advanceTimersByTime(5000);
    expect(expired).toHaveLength(1);
    leases.stop();
  });

  it('a tree that ended first ends its lease: its job ending later kills nothing', () => {
    const { expired, job, root } = held();
    root.end();
    vi.advanceTimersByTime(1000);
    job.end();
    vi.advanceTimersByTime(5000);
    expect(expired).toEqual([]);
    expect(vi.getTimerCount()).toBe(0); // nothing left to look at
  });

  it('looks at once: a job that ended during the restore has its tree killed without waiting', () => {
    const expired: string[] = [];
    const leases = new JobLeases((lease) => expired.push(lease.jobId), 1000);
    const job = process_(90_000_001);
    job.end();
    leases.hold({ jobId: 'late', job, root: process_(90_000_002) });
    expect(expired).toEqual(['late']);
  });

  it('stop() ends every look', () => {
    const { leases, expired, job } = held();
    leases.stop();
    job.end();
    vi.advanceTimersByTime(5000);
    expect(expired).toEqual([]);
  });
});
