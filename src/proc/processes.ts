/**
 * What /proc says about processes, read in one place: a process's stat line, its children and
 * whole tree, whether it still lives, and signalling a set of them. The supervisor, the daemon,
 * the engines, the simulation and the tests all look through this module.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { constants } from 'node:os';

/** The fields of /proc/PID/stat that ckpt-run reads. */
export interface ProcStat {
  /** R, S, D, Z (zombie), X (dead), T/t (stopped), … */
  state: string;
  ppid: number;
  session: number;
  /** In clock ticks since boot: with the PID, tells a process from a later one that reuses its PID. */
  startTime: string;
}

/** The fields of /proc/PID/stat after the command name (index 0 is the state, field 3 of proc(5)); undefined once PID is gone. */
export function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

export function readStat(pid: number): ProcStat | undefined {
  const fields = statFields(pid);
  return fields && { state: fields[0], ppid: Number(fields[1]), session: Number(fields[3]), startTime: fields[19] };
}

/** The process's state letter (R, S, D, T stopped, t traced, Z…), or undefined when it is gone. */
export function processState(pid: number): string | undefined {
  return readStat(pid)?.state;
}

/** Whether PID has ended: gone, a zombie, or dead (its status not yet collected or just being). */
export function hasEnded(pid: number): boolean {
  const state = processState(pid);
  return state === undefined || state === 'Z' || state === 'X';
}

/** The threads of PID (their ids); none when it is gone. */
export function threadsOf(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

/** The direct children of PID, whichever of its threads forked them. */
export function childrenOf(pid: number): number[] {
  return threadsOf(pid).flatMap((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

/** Every process of the tree rooted at PID, root first; without the subtrees rooted at EXCLUDE (the bench's idle cost leaves the program out). */
export function treeOf(pid: number, exclude: ReadonlySet<number> = new Set()): number[] {
  const tree: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (exclude.has(next)) continue;
    tree.push(next);
    queue.push(...childrenOf(next));
  }
  return tree;
}

/** Sends SIGNAL to each of PIDS; one already gone is no error. */
export function killAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Sends SIGNAL to the process group PGID; a group already gone is no error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  killAll([-pgid], signal);
}

/** A file's text, or nothing when it is absent (a process gone, a log not written yet). */
export function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** What each descriptor of PID points to, as /proc shows it ("/tmp/x", "socket:[123]", "/tmp/y (deleted)"); none when PID is gone. */
export function fdTargets(pid: number): string[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return []; // gone
  }
  return fds.flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
    } catch {
      return []; // closed meanwhile
    }
  });
}

/** A process for a message: "PID 1234 (sshd)", or "(gone)" once it has exited. */
export function processLabel(pid: number): string {
  return `PID ${pid} (${readOrEmpty(`/proc/${pid}/comm`).trim() || 'gone'})`;
}

/** The node's processes that have PATH open, as "PID 1234 (sshd)": for messages. */
export function holdersOf(path: string): string[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => fdTargets(Number(pid)).includes(path))
    .map((pid) => processLabel(Number(pid)));
}

/** The names PID holds: its working directory, its descriptors' targets, its mapped files (each once). */
export function heldNames(pid: number): string[] {
  const names = new Set(fdTargets(pid));
  try {
    names.add(readlinkSync(`/proc/${pid}/cwd`));
  } catch {
    // gone, or a zombie: no working directory
  }
  // A mapping's line: range perms offset dev inode NAME; file mappings' names start with a slash.
  for (const line of readOrEmpty(`/proc/${pid}/maps`).split('\n')) {
    const name = /^\S+ \S+ \S+ \S+ \S+ +(\/.*)$/.exec(line)?.[1];
    if (name) names.add(name);
  }
  return [...names];
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A process that is not necessarily our child (a restored tree is adopted by init), watched
 * through /proc. A dumped tree's root can linger as a zombie until init reaps it, slowly on
 * some nodes, so a zombie counts as gone; the start time guards against the PID being reused.
 */
export class ProcessHandle {
  private readonly startTime: string | undefined;

  constructor(readonly pid: number) {
    this.startTime = readStat(pid)?.startTime;
  }

  isAlive(): boolean {
    const stat = readStat(this.pid);
    if (!stat || this.startTime === undefined) return false;
    return stat.startTime === this.startTime && stat.state !== 'Z' && stat.state !== 'X';
  }
}

/**
 * Whether PID has a handler for SIGNAL (its SigCgt mask): a Node program catches nothing until
 * its first line runs, and until then the signal's default action (for SIGUSR2, termination)
 * applies. False once PID is gone.
 */
export function catchesSignal(pid: number, signal: NodeJS.Signals): boolean {
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readOrEmpty(`/proc/${pid}/status`))?.[1];
  return mask !== undefined && (BigInt(`0x${mask}`) & (1n << BigInt(constants.signals[signal] - 1))) !== 0n;
}

/** The effective capability set of PID (this process by default), as a bit mask; none if unreadable. */
export function effectiveCapabilities(pid: number | 'self' = 'self'): bigint {
  try {
    const mask = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return mask === undefined ? 0n : BigInt(`0x${mask}`);
  } catch {
    return 0n;
  }
}

/**
 * When the process PID started (epoch ms): the node's boot time plus the process's start in
 * clock ticks, which /proc counts in USER_HZ (100 on Linux). Kept across exec: for ckpt-run
 * exec'd by a job's shell, the job's start.
 */
export function startedAtMs(pid: number): number | undefined {
  const ticks = Number(readStat(pid)?.startTime);
  const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
  if (!Number.isFinite(ticks) || !Number.isFinite(bootSeconds)) return undefined;
  return bootSeconds * 1000 + ticks * 10;
}

/**
 * The resident memory of the tree rooted at PID (bytes): the sum of its processes' VmRSS. Pages
 * shared between them count in each, which errs on the big side, as an estimate of a dump should.
 */
export function treeRssBytes(pid: number): number {
  return treeOf(pid).reduce((sum, member) => sum + 1024 * Number(/^VmRSS:\s*(\d+) kB$/m.exec(readOrEmpty(`/proc/${member}/status`))?.[1] ?? 0), 0);
}
