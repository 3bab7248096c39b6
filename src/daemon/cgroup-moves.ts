/**
 * The daemon's writes into cgroups for a restored tree: into the new job's (where the scheduler's
 * node side says they are, scheduler/registry.ts), out of the dumped job's that criu recreated.
 */
import { rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Moves the processes into each cgroup (cgroup.procs moves all threads of a process; v1's
 * `tasks` would move one thread). Returns what failed: the tree already runs, so a cgroup
 * that refuses a process is worth a warning, not a failed restore.
 */
export function moveIntoCgroups(pids: number[], cgroups: string[]): string[] {
  const problems: string[] = [];
  for (const cgroup of cgroups) {
    for (const pid of pids) {
      try {
        writeFileSync(join(cgroup, 'cgroup.procs'), `${pid}\n`);
      } catch (error) {
        problems.push(`cannot move PID ${pid} into ${cgroup}: ${(error as NodeJS.ErrnoException).code}`);
      }
    }
  }
  return problems;
}

/** Removes cgroups the restored tree has left, as OAR does at the end of a job; returns what failed. */
export function removeCgroups(cgroups: string[]): string[] {
  const problems: string[] = [];
  for (const cgroup of cgroups) {
    try {
      rmdirSync(cgroup);
    } catch (error) {
      problems.push(`cannot remove the dumped job's cgroup ${cgroup}: ${(error as NodeJS.ErrnoException).code}`);
    }
  }
  return problems;
}
