/**
 * OAR's job cgroups. OAR's job resource manager puts every job's processes in
 * /oar/<user>_<jobid> under each cgroup v1 controller (cpuset, cpu, cpuacct, devices,
 * freezer...). They tell the daemon who owns a job id on this node, and where a restored
 * tree belongs (the node side of OAR's entry, oar.ts): criu restores a tree into the cgroups it
 * was dumped from, recreating those of the dumped job, which OAR removed when that job ended.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CGROUP_ROOT } from '../scheduler.js';

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
