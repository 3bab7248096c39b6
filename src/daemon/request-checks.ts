/**
 * What a request must satisfy before the daemon, running as root, acts on it. The requester
 * (the request file's owner) may only act on their own processes and folders: never on PID 1,
 * on the daemon itself, or through a symlink; and, where a scheduler runs the job id on this
 * node, only on their own job. Each check throws a Refusal that says which rule failed.
 */
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { treeOf } from '../proc/processes.js';
import type { Requester } from '../protocol/spool-request.js';
import { NODE_SIDES } from '../scheduler/registry.js';
import { PinnedDir } from './pinned-dir.js';
import { memberWithExtraPowers } from './process-powers.js';
import { Refusal } from './refusal.js';

/** A daemon that is not root can act only as itself. */
export function checkServable(requester: Requester): void {
  const self = process.getuid?.();
  if (self !== 0 && self !== requester.uid) {
    throw new Refusal(`this daemon runs as uid ${self} and serves no other user (the request is from uid ${requester.uid})`);
  }
}

/** The tree rooted at PID belongs to the requester and has no powers beyond theirs. */
export function checkTargetProcess(pid: number, requester: Requester): void {
  if (pid === 1) throw new Refusal('PID 1 (the node\'s init) is never dumped');
  if (pid === process.pid) throw new Refusal(`PID ${pid} is the daemon itself`);
  if (!existsSync(`/proc/${pid}`)) throw new Refusal(`no process ${pid} on this node`);
  const tree = treeOf(pid);
  if (tree.includes(process.pid)) throw new Refusal(`the tree of PID ${pid} contains the daemon itself`);
  const found = memberWithExtraPowers(tree, requester);
  if (found) throw new Refusal(`process ${found.pid} (in the tree of PID ${pid}) ${found.powers}, unlike ${requester.name}'s own processes`);
}

/**
 * Opens the run folder DIR for the request: an absolute path with no symlink anywhere (equal
 * to its realpath), a directory owned by the requester, whose `checkpoint` (if any) is a real
 * directory. The folder stays pinned (pinned-dir.ts), so later swaps change nothing.
 */
export function openRunDir(dir: string, requester: Requester): PinnedDir {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (error) {
    throw new Refusal(`folder ${dir} cannot be resolved (${(error as NodeJS.ErrnoException).code})`);
  }
  if (real !== dir) throw new Refusal(`folder ${dir} is reached through a symlink or an indirect path (it is ${real})`);
  let run: PinnedDir;
  try {
    run = PinnedDir.open(dir);
  } catch (error) {
    throw new Refusal(`folder ${dir} cannot be opened as a directory (${(error as NodeJS.ErrnoException).code})`);
  }
  try {
    if (run.location() !== dir) throw new Refusal(`folder ${dir} moved while it was being checked`);
    if (requester.uid !== 0 && run.stats.uid !== requester.uid) {
      throw new Refusal(`folder ${dir} belongs to uid ${run.stats.uid}, not to ${requester.name} (uid ${requester.uid})`);
    }
    const images = lstatOrUndefined(run.path('checkpoint'));
    if (images && !images.isDirectory()) throw new Refusal(`${dir}/checkpoint is not a directory (a symlink?)`);
    return run;
  } catch (error) {
    run.close();
    throw error;
  }
}

function lstatOrUndefined(path: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Where a scheduler runs the job id on this node (its node side, scheduler/registry.ts), only the
 * job's own user may ask for it; an owner in doubt (OAR: a "_" in the job id) is refused.
 */
export function checkJobOwner(jobId: string, requester: Requester, cgroupRoot?: string): void {
  if (requester.uid === 0) return;
  for (const { name, node } of NODE_SIDES) {
    const owner = node.jobOwner(jobId, cgroupRoot);
    if (owner === undefined) continue;
    if (owner.doubt) throw new Refusal(owner.doubt);
    if (owner.user !== requester.name) throw new Refusal(`${name} runs job ${jobId} for ${owner.user}, but the request comes from ${requester.name}`);
  }
}
