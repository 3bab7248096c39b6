/**
 * "Another node" for the real-CRIU suites: a resubmitted job usually runs on a node that never
 * saw the first job, whose node-local folders hold nothing of it. Between two jobs, this removes
 * every entry the job's user created (or changed) in those folders since the job started, as on
 * a fresh node. The hostname stays the node's: a user's program runs in the node's UTS
 * namespace, which CRIU neither dumps nor restores (the pre-resume check refuses a restored tree
 * with one of its own), so a program restored on a real other node sees that node's name. To
 * show it here, the restore would need a second daemon in a UTS namespace of its own (swapped
 * in for each resume), or the node's hostname changed under the OAR and Slurm suites that run
 * beside this one: neither is done.
 */
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const NODE_LOCAL_FOLDERS = ['/tmp', '/var/tmp', '/dev/shm'];

/** Removes what uid UID created or changed since SINCE (epoch ms) at the top of each node-local folder; returns the paths removed. */
export function onAnotherNode(uid: number, since: number): string[] {
  const removed: string[] = [];
  for (const folder of NODE_LOCAL_FOLDERS) {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      let stats;
      try {
        stats = lstatSync(path);
      } catch {
        continue; // gone meanwhile
      }
      // ctime: set at creation and at every change since; a second of slack for coarse clocks.
      if (stats.uid !== uid || stats.ctimeMs < since - 1000) continue;
      rmSync(path, { recursive: true, force: true }); // never follows a symlink
      removed.push(path);
    }
  }
  return removed;
}
