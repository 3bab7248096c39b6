/** The machine the figures were measured on. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  date: string;
  nproc: number;
  cpuModel: string;
  kernel: string;
  node: string;
  user: string;
  loadavg: number;
  loadavgAtEnd?: number;
}

export function machineInfo(): MachineInfo {
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // keep Node's count
  }
  return {
    date: new Date().toISOString(),
    nproc,
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    user: process.geteuid?.() === 0 ? 'root' : os.userInfo().username,
    loadavg: loadAverage(),
  };
}

/** 1-minute load average: other work on the node (other jobs, test suites) adds noise. */
export function loadAverage(): number {
  return Number(os.loadavg()[0].toFixed(2));
}
