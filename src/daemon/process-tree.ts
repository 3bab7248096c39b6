/** What /proc says about a process tree: its members and their powers. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { Requester } from '../engine/engine.js';

/** A /proc file's text, or nothing when the process is gone. */
export function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function threadsOf(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

/** Every process of the tree rooted at PID, root first. Any thread may have forked a child. */
export function treeOf(pid: number): number[] {
  const tree: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    tree.push(next);
    for (const tid of threadsOf(next)) {
      queue.push(...readOrEmpty(`/proc/${next}/task/${tid}/children`).split(' ').filter(Boolean).map(Number));
    }
  }
  return tree;
}

/** SIGKILL to every process of the tree rooted at PID (those already gone are skipped). */
export function killTree(pid: number): void {
  for (const member of treeOf(pid)) {
    try {
      process.kill(member, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

const NO_CAPABILITIES = /^0+$/;

/**
 * Why the process PID (any of its threads) has powers its user's own processes lack, or
 * undefined when it has none: another uid (real, effective, saved or filesystem), a group
 * the user is not in, a capability, or no "dumpable" flag (it ran a setuid program: the
 * kernel then gives the files of /proc/PID to root). Its memory would otherwise land in the user's images.
 */
export function extraPowers(pid: number, requester: Requester): string | undefined {
  if (requester.uid === 0) return undefined;
  for (const tid of threadsOf(pid)) {
    const fields = new Map(
      readOrEmpty(`/proc/${pid}/task/${tid}/status`)
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
    );
    const uids = (fields.get('Uid') ?? '').split(/\s+/).map(Number);
    if (uids.length !== 4 || uids.some((uid) => uid !== requester.uid)) return `runs as uid ${uids.join('/')}`;
    const gids = [...(fields.get('Gid') ?? '').split(/\s+/), ...(fields.get('Groups') ?? '').split(/\s+/)].filter(Boolean);
    const foreign = gids.map(Number).find((gid) => !requester.gids.includes(gid));
    if (foreign !== undefined) return `has group ${foreign}, which ${requester.name} is not in`;
    const capabilities = ['CapPrm', 'CapEff', 'CapAmb'].find((name) => !NO_CAPABILITIES.test(fields.get(name) ?? ''));
    if (capabilities) return `has capabilities (${capabilities} ${fields.get(capabilities) || 'unreadable'})`;
  }
  if (statSync(`/proc/${pid}/status`).uid !== requester.uid) return 'is not dumpable (it ran a setuid or setgid program)';
  return undefined;
}
