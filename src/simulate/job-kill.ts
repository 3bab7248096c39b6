/**
 * What OAR does to a job still running at its walltime (or past a preemption's grace), and what
 * a node crash does: SIGKILL to every process of the job at once (OAR kills the job's cgroup), no
 * SIGTERM first. The dry run has no job cgroup: the job is ckpt-run's process tree, plus the
 * restored program's, which is not under ckpt-run (init, or the daemon, adopted it).
 */
import { killAll, treeOf, type ProcessHandle } from '../proc/processes.js';

/** Kills the job unless ckpt-run has ended already (its own exit code then tells); true if killed. */
export function killWholeJob(ckptRun: ProcessHandle, restored: ProcessHandle | undefined): boolean {
  if (!ckptRun.isAlive()) return false;
  const roots = [ckptRun, restored].filter((handle): handle is ProcessHandle => handle?.isAlive() === true);
  killAll(roots.flatMap((root) => treeOf(root.pid)), 'SIGKILL');
  return true;
}
