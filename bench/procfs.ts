/**
 * What the bench reads about other processes, all from /proc: trees of descendants, CPU time,
 * peak RSS. Every function tolerates a process that vanished meanwhile. The /proc basics (stat,
 * children, kill-all) are the product's own (src/proc/processes.ts).
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { childrenOf, killAll, readStat, statFields, treeOf } from '../src/proc/processes.js';

export { childrenOf, killAll, treeOf };

let ticksPerSecond: number | undefined;
/** USER_HZ, the unit of the utime/stime/cutime/cstime fields of /proc/PID/stat. */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** true while PID exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const state = readStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** A stable identity for a process: PID plus its start time (PIDs are reused). */
export function identity(pid: number): string | undefined {
  const stat = readStat(pid);
  return stat === undefined ? undefined : `${pid}@${stat.startTime}`;
}

export function cmdline(pid: number): string[] | undefined {
  const text = read(`/proc/${pid}/cmdline`);
  return text === undefined ? undefined : text.split('\0').filter((part, i, all) => part !== '' || i < all.length - 1);
}

export function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/**
 * CPU time of one process in ms: its threads' on-CPU time in ns from schedstat (exact), plus
 * what its reaped children used (cutime + cstime, kept in ns by the kernel and shown in ticks).
 */
export function cpuMs(pid: number): number {
  const fields = statFields(pid);
  if (fields === undefined) return 0;
  const tick = 1000 / clockTicks();
  const reaped = (Number(fields[13]) + Number(fields[14])) * tick;
  let own = 0;
  let haveSchedstat = true;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = read(`/proc/${pid}/task/${task}/schedstat`);
      if (text === undefined) {
        haveSchedstat = false;
        break;
      }
      own += Number(text.split(' ')[0]) / 1e6;
    }
  } catch {
    haveSchedstat = false;
  }
  if (!haveSchedstat) own = (Number(fields[11]) + Number(fields[12])) * tick;
  return own + reaped;
}

/** Peak resident set (VmHWM) of a process in MiB, undefined once it is gone or a zombie. */
export function peakRssMiB(pid: number): number | undefined {
  const text = read(`/proc/${pid}/status`);
  const match = text && /^VmHWM:\s+(\d+) kB/m.exec(text);
  return match ? Number(match[1]) / 1024 : undefined;
}

/** Sends a signal to every process of a tree (leaves first), ignoring the ones already gone. */
export function killTree(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  killAll(treeOf(pid).reverse(), signal);
}

/** true when PID has a handler installed for signal number `signo` (SigCgt in /proc/PID/status). */
export function catchesSignal(pid: number, signo: number): boolean {
  const text = read(`/proc/${pid}/status`);
  const match = text && /^SigCgt:\s+([0-9a-f]+)/m.exec(text);
  return match ? (BigInt(`0x${match[1]}`) >> BigInt(signo - 1)) % 2n === 1n : false;
}
