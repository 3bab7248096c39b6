/**
 * OAR's job cgroups. OAR's job resource manager puts every job's processes in
 * /oar/<user>_<jobid> under each cgroup v1 controller (cpuset, cpu, cpuacct, devices,
 * freezer...). They tell the daemon who owns a job id on this node, and where a restored
 * tree belongs: criu restores a tree into the cgroups it was dumped from, recreating those of
 * the dumped job, which OAR removed when that job ended.
 */
import { readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The user OAR runs JOBID for on this node, from the job's cpuset; undefined without one. */
export function oarJobUser(jobId: string, root = CGROUP_ROOT): string | undefined {
  const suffix = `_${jobId}`;
  const cpuset = list(join(root, 'cpuset', 'oar')).find((name) => name.endsWith(suffix) && name.length > suffix.length);
  return cpuset?.slice(0, -suffix.length);
}

/** The job's cgroup folder under every controller that has one. */
export function jobCgroups(user: string, jobId: string, root = CGROUP_ROOT): string[] {
  return list(root)
    .map((controller) => join(root, controller, 'oar', `${user}_${jobId}`))
    .filter(isDirectory);
}

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

/**
 * The dumped job's cgroups that criu recreated, from the restored root's /proc/PID/cgroup
 * ("4:cpuset:/oar/alice_12"): /oar/<user>_<any other job>, under each controller listed.
 */
export function dumpedJobCgroups(procCgroup: string, user: string, jobId: string, root = CGROUP_ROOT): string[] {
  return procCgroup.split('\n').flatMap((line) => {
    const [, controllers = '', path = ''] = line.split(':');
    const name = path.startsWith('/oar/') ? path.slice('/oar/'.length) : '';
    const job = name.startsWith(`${user}_`) ? name.slice(user.length + 1) : '';
    // A "_" in what follows "<user>_" may make it another user's job ("alice_b" + "_7").
    if (!job || job.includes('/') || job.includes('_') || job === jobId) return [];
    return controllers.split(',').map((controller) => join(root, controller.replace(/^name=/, ''), path)).filter(isDirectory);
  });
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
