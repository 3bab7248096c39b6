/**
 * A restored tree is a child of the daemon's criu, not of the job that asked for it: when that
 * job ends without stopping it (ckpt-run SIGKILLed at walltime, a restore that completed after
 * its job was killed), the scheduler's own clean-up may miss it (Slurm's process tracking knows
 * only the job's descendants; OAR's cgroups hold it only once the daemon moved it there) and it
 * would run on unwatched, writing the run's files while the next job restores the same
 * checkpoint. So each restored tree is held on a lease: the job process named in the resume
 * request (ckpt-run itself; its PID and start time, checked at pickup) must live. Once it is gone
 * the daemon kills the tree, as the job's end would have. A request without a job PID (the
 * clusters' older clients) takes no lease. Leases live in the daemon's memory: a daemon restarted
 * meanwhile no longer holds the trees it restored before.
 */
import { killAll, ProcessHandle, readOrEmpty, treeOf } from '../proc/processes.js';
import type { Requester } from '../protocol/spool-request.js';
import { Refusal } from './refusal.js';

/** How often the daemon looks whether the jobs holding restored trees still live. */
export const LEASE_POLL_MS = 1000;

/** A process watched through /proc: ProcessHandle (its PID and start time). */
type Watched = Pick<ProcessHandle, 'pid' | 'isAlive'>;

export interface Lease {
  jobId: string;
  /** The job process the tree belongs to. */
  job: Watched;
  /** The restored tree's root. */
  root: Watched;
}

/** What becomes of a lease: kept, dropped (the tree ended first), or expired (its job ended first: kill the tree). */
function leaseVerdict(lease: Lease): 'keep' | 'drop' | 'expire' {
  if (!lease.root.isAlive()) return 'drop';
  return lease.job.isAlive() ? 'keep' : 'expire';
}

/**
 * The job process PID of a resume request: alive and the requester's own (its real uid), or the
 * request is refused: a restore for a job that already ended would run for nobody.
 */
export function checkJobProcess(pid: number, requester: Requester): ProcessHandle {
  const job = new ProcessHandle(pid);
  if (!job.isAlive()) throw new Refusal(`the job process ${pid} that asked for the restore has ended: nothing to restore for`);
  const uid = Number(/^Uid:\s*(\d+)/m.exec(readOrEmpty(`/proc/${pid}/status`))?.[1]);
  if (requester.uid !== 0 && uid !== requester.uid) throw new Refusal(`the job process ${pid} runs as uid ${uid}, not as ${requester.name}`);
  return job;
}

export class JobLeases {
  private leases: Lease[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Told each tree killed because its job ended, with how many processes it had. */
    private readonly onExpired: (lease: Lease, killed: number) => void,
    private readonly pollMs = LEASE_POLL_MS,
  ) {}

  /** Holds the tree rooted at ROOT for JOB; looks at once, since the job may have ended during the restore. */
  hold(lease: Lease): void {
    this.leases.push(lease);
    this.look();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private look(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.leases = this.leases.filter((lease) => {
      const verdict = leaseVerdict(lease);
      if (verdict === 'expire') this.onExpired(lease, killTree(lease.root.pid));
      return verdict === 'keep';
    });
    // Unref'd: a daemon serving only what is queued (--once) does not stay for its leases.
    if (this.leases.length > 0) this.timer = setTimeout(() => this.look(), this.pollMs).unref();
  }
}

/** SIGKILLs the tree rooted at ROOT; returns how many processes it had. */
function killTree(root: number): number {
  const tree = treeOf(root);
  killAll(tree, 'SIGKILL');
  return tree.length;
}
