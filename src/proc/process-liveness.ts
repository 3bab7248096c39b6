/**
 * Watching a process that is not our child (a restored tree is adopted by init), through /proc.
 * A dumped tree's root can linger as a zombie until init reaps it, slowly on some nodes, so a
 * zombie counts as gone; the start time guards against the PID being reused meanwhile.
 */
import { readFileSync } from 'node:fs';

interface ProcStat {
  state: string;
  startTime: string;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: fields[19] };
}

/**
 * The process's state letter from /proc/PID/stat (R, S, D, T stopped, t traced, Z...), or
 * undefined when it is gone.
 */
export function processState(pid: number): string | undefined {
  return readStat(pid)?.state;
}

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

/** The direct children of a process (the program under the shim). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(' ')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
