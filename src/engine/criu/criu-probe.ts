/**
 * What criu can do on this node, found once (ckpt-daemon at start, `ckpt-daemon --check`, the dry
 * run) by running it: `criu check` says "Looks good" on nodes where every dump then hangs for ever
 * (hardware breakpoints that never trap, criu issues #162 and #107), so the probe dumps and
 * restores a canary of its own, each bounded, first with criu's defaults and, where the dump
 * stalls at the breakpoint step, again with breakpoints off. The mode that works is the one every
 * later criu call uses (CriuSettings).
 */
import { execa, execaSync } from 'execa';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { effectiveCapabilities, readOrEmpty, treeRssBytes } from '../../proc/processes.js';
import type { DumpRate } from '../../protocol/heartbeat.js';
import { formatMegabytes } from '../../base/sizes.js';
import { dumpProgress, stalledAtBreakpoint } from './criu-stage.js';

/** How every criu call runs on this node. */
export interface CriuSettings {
  /**
   * 'off': criu runs with CRIU_FAULT=130 (its FI_NO_BREAKPOINTS switch: it steps the parasite's
   * way out with PTRACE_SYSCALL instead of waiting for a breakpoint). criu 4.2.1 turns them off by
   * itself where they do not work; 4.1.1 needs the switch.
   */
  breakpoints: 'on' | 'off';
  /**
   * How criu locks the network while it dumps TCP connections: its default runs iptables-restore,
   * which many nodes lack ("Iptables configuration failed ... status=127"); nftables goes through
   * the libnftables that criu links.
   */
  networkLock: 'iptables' | 'nftables';
  /** Restore lazily (engine/lazy-pages.ts): where userfaultfd works, unless the admin said no. */
  lazyPages?: boolean;
}

export const NO_BREAKPOINTS_ENV = { CRIU_FAULT: '130' } as const;

/**
 * criu's arguments and environment for SETTINGS. The network lock matters only for a tree with
 * established TCP connections (LOCKSNETWORK): the nftables one costs about a second per dump.
 */
export function criuMode(settings: CriuSettings, locksNetwork: boolean): { args: string[]; env: Record<string, string> } {
  return {
    args: locksNetwork && settings.networkLock === 'nftables' ? ['--network-lock', 'nftables'] : [],
    env: settings.breakpoints === 'off' ? { ...NO_BREAKPOINTS_ENV } : {},
  };
}

export interface CriuFindings {
  criu: string;
  version?: string;
  /** Why criu cannot checkpoint here; undefined when it can. */
  problem?: string;
  settings: CriuSettings;
  /** What the canary showed about hardware breakpoints, in words. */
  breakpoints: string;
  canaryMs?: number;
  /** Capabilities criu needs that this process lacks. */
  missingCapabilities: string[];
  /** Root without CAP_SYS_RESOURCE: a dump of another user's process needs the prlimit shim. */
  needsPrlimitShim: boolean;
  /** criu pre-dump (incremental checkpoints) needs the kernel's soft-dirty tracking. */
  softDirty?: boolean;
  /** Lazy restore needs userfaultfd for other processes. */
  userfaultfd?: boolean;
  /** The memory canary's rate (measureDumpRate), or why it is not known; measured by the daemon and --check only. */
  dumpRate?: DumpRate | string;
}

/** One canary step (dump or restore) may take this long; a working one takes well under a second. */
export const CANARY_TIMEOUT_MS = 10_000;
const VERSION_TIMEOUT_MS = 10_000;
const CHECK_TIMEOUT_MS = 30_000;

/** Capability numbers (linux/capability.h) criu needs to dump and restore other users' trees. */
const NEEDED_CAPABILITIES: Record<string, number> = {
  CAP_DAC_OVERRIDE: 1,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_NET_ADMIN: 12,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: 21,
};
const CAP_SYS_RESOURCE = 24;

const has = (caps: bigint, bit: number): boolean => ((caps >> BigInt(bit)) & 1n) === 1n;

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

async function feature(criu: string, name: string): Promise<boolean | undefined> {
  const result = await execa(criu, ['check', '--feature', name], { all: true, reject: false, timeout: CHECK_TIMEOUT_MS });
  if (result.timedOut) return undefined;
  return result.exitCode === 0;
}

type CanaryResult = { ok: true; ms: number; criuKnew: boolean } | { ok: false; stalledAtBreakpoint: boolean; why: string };

/** Dumps and restores a `sleep` of our own with ENV, each step bounded. */
async function canary(criu: string, env: Record<string, string>): Promise<CanaryResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-criu-canary-'));
  // A session of its own, as ckpt-run's programs have: no --shell-job needed.
  const sleeper = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  const gone = new Promise((resolve) => sleeper.once('exit', resolve));
  const started = Date.now();
  try {
    const dump = await execa(criu, ['dump', '-t', String(sleeper.pid), '-D', dir, '-o', 'dump.log', '-v4'], {
      env, reject: false, stdin: 'ignore', timeout: CANARY_TIMEOUT_MS, killSignal: 'SIGKILL',
    });
    const log = readOrEmpty(join(dir, 'dump.log'));
    sleeper.kill('SIGKILL'); // a stalled dump was killed and released it; a good one killed it
    await gone; // reaped: the restore takes the same PID again
    if (dump.timedOut) {
      const progress = dumpProgress(log);
      return { ok: false, stalledAtBreakpoint: stalledAtBreakpoint(progress), why: `the dump stalled for ${CANARY_TIMEOUT_MS / 1000} s (last log line: ${progress.lastLine})` };
    }
    if (dump.exitCode !== 0) return { ok: false, stalledAtBreakpoint: false, why: `the dump failed: ${lastError(log) ?? dump.stderr.trim()}` };
    const restore = await execa(criu, ['restore', '-d', '-D', dir, '-o', 'restore.log', '-v4', '--pidfile', join(dir, 'pidfile')], {
      env, reject: false, stdin: 'ignore', timeout: CANARY_TIMEOUT_MS, killSignal: 'SIGKILL',
    });
    const restored = Number(readOrEmpty(join(dir, 'pidfile')).trim());
    if (restored > 0) process.kill(restored, 'SIGKILL');
    if (restore.timedOut) return { ok: false, stalledAtBreakpoint: false, why: `the restore stalled for ${CANARY_TIMEOUT_MS / 1000} s` };
    if (restore.exitCode !== 0) return { ok: false, stalledAtBreakpoint: false, why: `the restore failed: ${lastError(readOrEmpty(join(dir, 'restore.log'))) ?? restore.stderr.trim()}` };
    return { ok: true, ms: Date.now() - started, criuKnew: log.includes("Hardware breakpoints don't seem to work") };
  } finally {
    sleeper.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The memory canary: a node process holding this much, filled (pages that must be dumped). The
 * sleep canary above tells nothing of a rate: its dump of ~1 MB is all fixed cost (criu's start,
 * the freeze, the parasite), 80 ms here for 0.13 MB, which as a rate would be ~2 MB/s where a
 * 1.6 GB dump goes at ~1.4 GB/s. 256 MB: dumped in ~240 ms here (~1.08 GB/s), a second at the
 * daemon's start; how the jobs take it (a ceiling: big dumps go at the disk's pace):
 * launcher/final-plan.ts, DAEMON_RATE_CEILING.
 */
export const MEMORY_CANARY_BYTES = 256e6;
const canaryHolder = (bytes: number): string => `const held = Buffer.alloc(${bytes}, 1); setInterval(() => held[0]++, 1e6);`;

/**
 * How fast criu dumps memory on this node (ckpt-daemon at start, --check): the memory canary's
 * images over its dump's time, fixed cost included, so it errs on the slow side (an earlier plan)
 * for the bigger programs jobs run. The dump goes to the daemon's temporary folder: a job's
 * checkpoint on a shared filesystem may be slower (its plan's safety factor is for that, and its
 * own first dump replaces this). Why it could not be measured, as a string, or the rate.
 */
export async function measureDumpRate(criu: string, settings: CriuSettings): Promise<DumpRate | string> {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-criu-rate-'));
  const holder = spawn(process.execPath, ['-e', canaryHolder(MEMORY_CANARY_BYTES)], { detached: true, stdio: 'ignore' });
  const gone = new Promise((resolve) => holder.once('exit', resolve).once('error', resolve));
  try {
    const filledBy = Date.now() + CANARY_TIMEOUT_MS;
    // Filled when its memory is all there: this VM faults pages in at ~270 MB/s.
    while (treeRssBytes(holder.pid ?? 0) < MEMORY_CANARY_BYTES) {
      if (holder.exitCode !== null || Date.now() > filledBy) return `the memory canary did not fill ${MEMORY_CANARY_BYTES / 1e6} MB within ${CANARY_TIMEOUT_MS / 1000} s`;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { args, env } = criuMode(settings, false);
    const started = Date.now();
    const dump = await execa(criu, ['dump', '-t', String(holder.pid), '-D', dir, '-o', 'dump.log', ...args], {
      env, reject: false, stdin: 'ignore', timeout: CANARY_TIMEOUT_MS, killSignal: 'SIGKILL',
    });
    const canaryMs = Date.now() - started;
    if (dump.timedOut) return `the memory canary's dump took over ${CANARY_TIMEOUT_MS / 1000} s`;
    if (dump.exitCode !== 0) return `the memory canary's dump failed: ${lastError(readOrEmpty(join(dir, 'dump.log'))) ?? dump.stderr.trim()}`;
    const canaryBytes = readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    return { bytesPerSec: (canaryBytes / Math.max(canaryMs, 1)) * 1000, canaryBytes, canaryMs };
  } finally {
    holder.kill('SIGKILL');
    await gone;
    rmSync(dir, { recursive: true, force: true });
  }
}

function lastError(log: string): string | undefined {
  return log.split('\n').filter((line) => /Error \(/.test(line)).pop()?.trim();
}

export interface ProbeOptions {
  /** 'auto' runs the canary; 'on'/'off' take the admin's word and skip it. */
  breakpoints?: 'auto' | 'on' | 'off';
}

export async function probeCriu(criu: string, options: ProbeOptions = {}): Promise<CriuFindings> {
  const caps = effectiveCapabilities();
  const findings: CriuFindings = {
    criu,
    settings: { breakpoints: 'on', networkLock: onPath('iptables-restore') ? 'iptables' : 'nftables' },
    breakpoints: 'not probed',
    missingCapabilities: Object.entries(NEEDED_CAPABILITIES).filter(([, bit]) => !has(caps, bit)).map(([name]) => name),
    needsPrlimitShim: process.geteuid?.() === 0 && !has(caps, CAP_SYS_RESOURCE),
  };
  if (process.geteuid?.() !== 0) return { ...findings, problem: 'CRIU restores only as root and you are not root' };
  const version = await execa(criu, ['--version'], { all: true, reject: false, timeout: VERSION_TIMEOUT_MS });
  if (version.exitCode !== 0) {
    const why = (version.shortMessage ?? `exit code ${version.exitCode}`).split('\n')[0];
    return { ...findings, problem: `cannot run ${criu}: ${why} (install it: sudo bash scripts/install-criu.sh, or give --criu PATH)` };
  }
  findings.version = /Version:\s*(\S+)/.exec(version.all ?? '')?.[1] ?? (version.all ?? '').trim().split('\n')[0];
  const check = await execa(criu, ['check'], { all: true, reject: false, timeout: CHECK_TIMEOUT_MS });
  if (!(check.all ?? '').includes('Looks good')) {
    const detail = (check.all ?? '').trim().split('\n').pop() ?? '';
    return { ...findings, problem: `"${criu} check" does not say "Looks good": ${detail} (install a working CRIU: sudo bash scripts/install-criu.sh)` };
  }
  findings.softDirty = await feature(criu, 'mem_dirty_track');
  findings.userfaultfd = await feature(criu, 'uffd-noncoop');
  findings.settings.lazyPages = findings.userfaultfd === true;
  const wanted = options.breakpoints ?? 'auto';
  if (wanted !== 'auto') {
    findings.settings.breakpoints = wanted;
    findings.breakpoints = `${wanted} (--criu-breakpoints ${wanted}: not probed)`;
    return findings;
  }
  const withDefaults = await canary(criu, {});
  if (withDefaults.ok) {
    findings.canaryMs = withDefaults.ms;
    findings.breakpoints = withDefaults.criuKnew
      ? 'hardware breakpoints do not trap on this node; this criu noticed and runs without them'
      : 'hardware breakpoints work';
    return findings;
  }
  if (!withDefaults.stalledAtBreakpoint) return { ...findings, problem: `a canary process could not be checkpointed: ${withDefaults.why}` };
  const withoutBreakpoints = await canary(criu, { ...NO_BREAKPOINTS_ENV });
  if (!withoutBreakpoints.ok) {
    return { ...findings, problem: `criu stalls at the breakpoint step, and without breakpoints ${withoutBreakpoints.why}` };
  }
  findings.canaryMs = withoutBreakpoints.ms;
  findings.settings.breakpoints = 'off';
  findings.breakpoints = 'hardware breakpoints do not trap on this node: criu runs without them';
  return findings;
}

/** The memory canary's measurement in words, for the daemon's log and --check. */
export const describeDumpRate = (rate: DumpRate | string): string =>
  typeof rate === 'string'
    ? `not measured (${rate}): jobs plan with their default until their own first dump`
    : `${formatMegabytes(rate.canaryBytes)} dumped in ${rate.canaryMs} ms, ${formatMegabytes(rate.bytesPerSec)}/s (published in the heartbeat for the jobs' final-checkpoint plans)`;

/** `ckpt-daemon --check`: one line a finding. */
export function formatFindings(findings: CriuFindings): string[] {
  const yesNo = (value: boolean | undefined): string => (value === undefined ? 'unknown' : value ? 'yes' : 'no');
  return [
    `criu:          ${findings.criu}${findings.version ? ` (version ${findings.version})` : ''}`,
    `breakpoints:   ${findings.breakpoints}`,
    `canary:        ${findings.canaryMs === undefined ? 'not run' : `dumped and restored in ${findings.canaryMs} ms`}`,
    ...(findings.dumpRate === undefined ? [] : [`dump rate:     ${describeDumpRate(findings.dumpRate)}`]),
    `network lock:  ${findings.settings.networkLock}${findings.settings.networkLock === 'nftables' ? ' (no iptables-restore on PATH)' : ''}`,
    `capabilities:  ${findings.missingCapabilities.length === 0 ? 'all that criu needs' : `missing ${findings.missingCapabilities.join(', ')}`}`,
    `prlimit shim:  ${findings.needsPrlimitShim ? 'needed (root lacks CAP_SYS_RESOURCE: bash scripts/install-criu.sh --with-prlimit-shim, then --criu PREFIX/bin/criu-prlimit-shim)' : 'not needed'}`,
    `soft-dirty:    ${yesNo(findings.softDirty)} (incremental pre-dumps)`,
    `userfaultfd:   ${yesNo(findings.userfaultfd)} (lazy restore: ${findings.settings.lazyPages ? 'used' : 'not used, restores read every page first'})`,
    findings.problem ? `verdict:       NOT USABLE: ${findings.problem}` : 'verdict:       usable',
  ];
}

/**
 * The quick answer, for the test suites' real-part probes: root, and a criu that passes `criu
 * check` (the canary of probeCriu is the daemon's and the dry run's). Why not, or undefined.
 */
export function criuUnusable(criu: string): string | undefined {
  if (process.geteuid?.() !== 0) return 'CRIU restores only as root and you are not root';
  try {
    const check = execaSync(criu, ['check'], { all: true, reject: false, timeout: 30_000 });
    if (check.exitCode === 0) return undefined;
    const detail = (check.all ?? '').trim().split('\n').pop() ?? '';
    return `"${criu} check" failed: ${detail} (install a working CRIU: sudo bash scripts/install-criu.sh)`;
  } catch (error) {
    return `cannot run ${criu}: ${(error as Error).message} (install it: sudo bash scripts/install-criu.sh)`;
  }
}

/**
 * Whether this process may raise another user's limits, as criu must to dump their processes
 * (root in a container often lacks CAP_SYS_RESOURCE: criu then fails with "Can't get rlimit 0:
 * Operation not permitted" unless run through the prlimit shim of install-criu.sh).
 */
export function canDumpOtherUsers(): boolean {
  return has(effectiveCapabilities(), CAP_SYS_RESOURCE);
}
