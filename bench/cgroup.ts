/**
 * Exact CPU accounting of a set of processes and everything they fork (including children
 * that already exited), through a CPU-accounting cgroup of our own: cgroup v1 `cpuacct`
 * (cpuacct.usage, ns) or else cgroup v2 (cpu.stat usage_usec). Needs root; callers fall back
 * to /proc (bench/procfs.ts) when `cpuCgroup` returns undefined. The cgroup is removed again.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function flavour() {
  const v1 = '/sys/fs/cgroup/cpuacct';
  if (existsSync(join(v1, 'cpuacct.usage'))) return { kind: 'cgroup v1 cpuacct', base: v1 };
  for (const base of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (existsSync(join(base, 'cgroup.controllers')) && existsSync(join(base, 'cgroup.procs'))) return { kind: 'cgroup v2 cpu.stat', base };
  }
  return undefined;
}

function usageMs(kind: string, dir: string): number {
  if (kind.startsWith('cgroup v1')) return Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1e6;
  const match = /^usage_usec (\d+)/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
  return match ? Number(match[1]) / 1000 : NaN;
}

/** A fresh accounting cgroup named after `name`, or undefined when we cannot make one. */
export interface CpuCgroup {
  kind: string;
  add(pid: number): boolean;
  usageMs(): number;
  remove(): void;
}

export function cpuCgroup(name: string): CpuCgroup | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  const found = flavour();
  if (!found) return undefined;
  const dir = join(found.base, `ckpt-bench-${process.pid}-${name}`);
  try {
    mkdirSync(dir);
    if (!Number.isFinite(usageMs(found.kind, dir))) throw new Error('no usage counter');
  } catch {
    try {
      rmdirSync(dir);
    } catch {
      // never made
    }
    return undefined;
  }
  return {
    kind: found.kind,
    /** Moves a process (all its threads) in; what it forks from now on stays in. */
    add(pid: number) {
      try {
        writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
        return true;
      } catch {
        return false;
      }
    },
    usageMs: () => usageMs(found.kind, dir),
    /** Moves anything left back to the root group and removes the cgroup. */
    remove() {
      try {
        for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            writeFileSync(join(found.base, 'cgroup.procs'), `${pid}\n`);
          } catch {
            // exited meanwhile
          }
        }
        rmdirSync(dir);
      } catch {
        // already gone
      }
    },
  };
}
