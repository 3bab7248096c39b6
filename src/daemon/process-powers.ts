/**
 * What /proc says about the powers of a process: more than its user's own processes have?
 *
 * A tree is listed, then each member read: a job's program forks and reaps children all the time
 * (a shell loop's `date`, `tr`, `sleep`), so members vanish between the two, threads within one
 * member, and a member that is exiting has already given its memory up, after which the kernel
 * shows its /proc files as root's. None of that is a finding: a member that is gone, a zombie or
 * exiting carries no memory into the images. This check is an early, friendly refusal; what the
 * dump proves is proven again on the frozen tree by criu's post-dump action
 * (scripts/criu-pre-resume-check.sh), where nothing can come or go.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { Requester } from '../protocol/spool-request.js';

const NO_CAPABILITIES = /^0+$/;

/** The credentials of one thread, as its status file shows them. */
export interface ThreadCredentials {
  /** Real, effective, saved and filesystem uid. */
  uids: number[];
  /** Its gids (real, effective, saved, filesystem) and supplementary groups. */
  gids: number[];
  /** CapPrm, CapEff, CapAmb as /proc shows them (hex). */
  capabilities: Record<'CapPrm' | 'CapEff' | 'CapAmb', string>;
}

/** One live member of a tree, read whole from /proc; undefined when it is gone, a zombie or exiting. */
export interface MemberCredentials {
  threads: ThreadCredentials[];
  /** The owner the kernel gives /proc/PID/status: root's for a process that lost its "dumpable" flag. */
  statusOwner: number;
}

function statusFields(text: string): Map<string, string> {
  return new Map(text.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
}

const numbers = (field: string | undefined): number[] => (field ?? '').split(/\s+/).filter(Boolean).map(Number);

export function threadCredentials(statusText: string): ThreadCredentials {
  const fields = statusFields(statusText);
  return {
    uids: numbers(fields.get('Uid')),
    gids: [...numbers(fields.get('Gid')), ...numbers(fields.get('Groups'))],
    capabilities: { CapPrm: fields.get('CapPrm') ?? '', CapEff: fields.get('CapEff') ?? '', CapAmb: fields.get('CapAmb') ?? '' },
  };
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** State letter and start time from a stat line (the command name may hold spaces and parentheses). */
function stateAndStart(statText: string | undefined): { state: string; start: string } | undefined {
  if (statText === undefined) return undefined;
  const fields = statText.slice(statText.lastIndexOf(')') + 2).trim().split(' ');
  return { state: fields[0], start: fields[19] };
}

/**
 * Reads member PID of a tree under PROC (/proc; a test's fake one). The start time, read first
 * and last, ties every read to one process: a PID that went, or went to another process, in
 * between reads as gone. A member without memory (a zombie, or exiting: no VmSize in its status)
 * reads as gone too: the kernel shows such a process's files as root's whatever it ran.
 */
export function readMember(pid: number, proc = '/proc'): MemberCredentials | undefined {
  const first = stateAndStart(readOrUndefined(`${proc}/${pid}/stat`));
  if (!first || first.state === 'Z' || first.state === 'X') return undefined;
  let tids: string[];
  let statusOwner: number;
  try {
    tids = readdirSync(`${proc}/${pid}/task`);
    statusOwner = statSync(`${proc}/${pid}/status`).uid;
  } catch {
    return undefined;
  }
  // A thread that exited after the listing has no status to read: it is no finding.
  const threads = tids.flatMap((tid) => {
    const text = readOrUndefined(`${proc}/${pid}/task/${tid}/status`);
    return text === undefined ? [] : [threadCredentials(text)];
  });
  const hasMemory = /^VmSize:/m.test(readOrUndefined(`${proc}/${pid}/status`) ?? '');
  const last = stateAndStart(readOrUndefined(`${proc}/${pid}/stat`));
  if (!hasMemory || !last || last.start !== first.start) return undefined;
  return { threads, statusOwner };
}

/**
 * Why MEMBER has powers its user's own processes lack, or undefined when it has none: another
 * uid (real, effective, saved or filesystem), a group the user is not in, a capability, or no
 * "dumpable" flag (it ran a setuid program: the kernel then gives the files of /proc/PID to
 * root). Its memory would otherwise land in the user's images. Root has every power.
 */
export function extraPowersOf(member: MemberCredentials, requester: Requester): string | undefined {
  if (requester.uid === 0) return undefined;
  for (const { uids, gids, capabilities } of member.threads) {
    if (uids.length !== 4 || uids.some((uid) => uid !== requester.uid)) return `runs as uid ${uids.join('/')}`;
    const foreign = gids.find((gid) => !requester.gids.includes(gid));
    if (foreign !== undefined) return `has group ${foreign}, which ${requester.name} is not in`;
    const held = (['CapPrm', 'CapEff', 'CapAmb'] as const).find((name) => !NO_CAPABILITIES.test(capabilities[name]));
    if (held) return `has capabilities (${held} ${capabilities[held] || 'unreadable'})`;
  }
  if (member.statusOwner !== requester.uid) return 'is not dumpable (it ran a setuid or setgid program)';
  return undefined;
}

/**
 * The first member of TREE (a listing, root first) with powers beyond REQUESTER's, and why; a
 * member gone since the listing is skipped. Root's requests take the same reads as a user's.
 */
export function memberWithExtraPowers(tree: number[], requester: Requester, proc = '/proc'): { pid: number; powers: string } | undefined {
  for (const pid of tree) {
    const member = readMember(pid, proc);
    const powers = member && extraPowersOf(member, requester);
    if (powers) return { pid, powers };
  }
  return undefined;
}
