/**
 * What the adversarial suite sets up and looks at (root only): the sandbox of the two users,
 * their requests, their processes, OAR's job cpusets as OAR would make them, images handed
 * over, and the "untouched" evidence: snapshots of folders, files and processes taken before
 * an attack and compared after it.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStat } from '../../src/proc/processes.js';
import { signAsTheDaemon } from './daemon-harness.js';
import { waitUntil } from './poll.js';
import { shAsUser, spawnAsUser, type SuiteUser } from './security-users.js';
import { killAll } from './listed-processes.js';

export interface SecuritySandbox {
  base: string;
  spool: string;
  /** Root's own folder (0700): root's runs and marker files. */
  rootDir: string;
  /** A project folder every user may write (0777, not sticky), as clusters have. */
  shared: string;
  /** A copy of sleep, setuid root: what a setuid program (passwd, su) does to credentials. */
  suidSleep: string;
  home(user: SuiteUser): string;
}

export function makeSecuritySandbox(users: SuiteUser[]): SecuritySandbox {
  const base = mkdtempSync(join(tmpdir(), 'ckpt-security-e2e-'));
  chmodSync(base, 0o755);
  const folder = (path: string, mode: number, owner?: SuiteUser): string => {
    mkdirSync(path);
    chmodSync(path, mode);
    if (owner) chownSync(path, owner.uid, owner.gid);
    return path;
  };
  const spool = folder(join(base, 'spool'), 0o1777);
  const rootDir = folder(join(base, 'root'), 0o700);
  const shared = folder(join(base, 'shared'), 0o777);
  for (const user of users) folder(join(base, `home-${user.name}`), 0o700, user);
  folder(join(base, 'bin'), 0o755);
  const suidSleep = join(base, 'bin', 'suid-sleep');
  copyFileSync('/usr/bin/sleep', suidSleep);
  chmodSync(suidSleep, 0o4755);
  return { base, spool, rootDir, shared, suidSleep, home: (user) => join(base, `home-${user.name}`) };
}

/** A folder of USER, made by USER (mode 0700 unless told). */
export function userFolder(user: SuiteUser, path: string, mode = '700'): string {
  shAsUser(user, 'mkdir -m "$2" -- "$1"', path, mode);
  return path;
}

/** USER writes the spool request NAME as a job does: a hidden temp file, renamed into place. */
export function requestAs(user: SuiteUser, spool: string, name: string, body: string): void {
  shAsUser(user, 'printf "%s" "$1" > "$2/.$3.tmp" && mv -f -- "$2/.$3.tmp" "$2/$3"', body, spool, name);
}

/** Root's own request (a root-owned file). */
export function requestAsRoot(spool: string, name: string, body: string): void {
  const temp = join(spool, `.${name}.tmp`);
  writeFileSync(temp, body);
  renameSync(temp, join(spool, name));
}

/** Processes this suite started, killed (whole session) at the end. */
const started: number[] = [];

export function trackProcess(pid: number): number {
  started.push(pid);
  return pid;
}

export function killStarted(): void {
  killAll(started.splice(0).flatMap((pid) => [-pid, pid]), 'SIGKILL');
}

export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Starts ARGV as USER, in a session of its own; resolves once it runs COMM (its final program). */
export async function userProcess(user: SuiteUser, argv: string[], comm: string, options: { cwd?: string } = {}): Promise<{ pid: number; child: ChildProcess }> {
  const child = spawnAsUser(user, argv, { ...options, quiet: true });
  const pid = trackProcess(child.pid as number);
  await waitUntil(() => commOf(pid) === comm || child.exitCode !== null, `${argv.join(' ')} to run ${comm}`);
  if (child.exitCode !== null) throw new Error(`${argv.join(' ')} exited (${child.exitCode})`);
  return { pid, child };
}

/** What must not change about a process: it lives (same start time), same credentials, not stopped, same cgroups. */
export function fingerprint(pid: number): Record<string, string> {
  const stat = readStat(pid);
  if (!stat) throw new Error(`no process ${pid}`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
  return {
    startTime: stat.startTime,
    stopped: String(/^[tT]$/.test(stat.state)),
    uid: field('Uid'),
    gid: field('Gid'),
    caps: field('CapEff'),
    cgroup: readFileSync(`/proc/${pid}/cgroup`, 'utf8'),
  };
}

/** Every entry under PATH (PATH included): type, owner, mode, size, times, content hash or link target. */
export function snapshot(path: string): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (full: string, relative: string): void => {
    const stats = lstatSync(full);
    const common = `${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)} ${stats.nlink} ${stats.mtimeMs} ${stats.ctimeMs}`;
    if (stats.isSymbolicLink()) entries[relative] = `link ${readlinkSync(full)} ${common}`;
    else if (stats.isDirectory()) {
      entries[relative] = `dir ${common}`;
      for (const name of readdirSync(full)) walk(join(full, name), join(relative, name));
    } else if (stats.isFile()) entries[relative] = `file ${stats.size} ${createHash('sha1').update(readFileSync(full)).digest('hex')} ${common}`;
    else entries[relative] = `other ${common}`;
  };
  walk(path, '.');
  return entries;
}

/**
 * /etc as far as a daemon acting on a symlink to it could change it: its own owner and mode,
 * and each entry's name, type, owner and mode (not times: account tools elsewhere rewrite files).
 */
export function etcSnapshot(): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const name of ['.', ...readdirSync('/etc')]) {
    const stats = lstatSync(join('/etc', name));
    entries[name] = `${stats.isSymbolicLink() ? 'link' : stats.isDirectory() ? 'dir' : 'file'} ${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)}`;
  }
  return entries;
}

/** OAR's cpuset for USER's job JOBID, made as OAR's job resource manager makes it; removed by removeCpusets. */
const cpusets: string[] = [];
export const OAR_CPUSETS = '/sys/fs/cgroup/cpuset/oar';

export function createJobCpuset(user: string, jobId: string): string {
  if (!existsSync(OAR_CPUSETS)) {
    mkdirSync(OAR_CPUSETS);
    for (const file of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(OAR_CPUSETS, file), readFileSync(join(OAR_CPUSETS, '..', file)));
  }
  const dir = join(OAR_CPUSETS, `${user}_${jobId}`);
  mkdirSync(dir);
  cpusets.push(dir);
  for (const file of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(dir, file), readFileSync(join(OAR_CPUSETS, file)));
  return dir;
}

export function cgroupProcs(dir: string): number[] {
  return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

/**
 * Removes the cpusets made here (their processes must be gone first). OAR's own folder stays, as
 * OAR's job resource manager leaves it: the OAR suites, in another lane, may have jobs in it.
 */
export function removeCpusets(): string[] {
  const problems: string[] = [];
  for (const dir of cpusets.splice(0).reverse()) {
    try {
      if (existsSync(dir)) rmdirSync(dir);
    } catch (error) {
      problems.push(`${dir}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/** Root's images of a run, handed to USER as theirs: copied into DIR/checkpoint and given to USER. */
export function handImagesTo(user: SuiteUser, rootRun: string, dir: string, resignWith?: string): void {
  execFileSync('cp', ['-a', join(rootRun, 'checkpoint'), join(dir, 'checkpoint')]);
  // The daemon signed root's images for root: as they are, they are refused before criu runs.
  // Re-signed for the user with the daemon's key (as if the key had leaked), they reach the
  // next line of defence, the check of the restored processes before they run.
  if (resignWith) signAsTheDaemon(join(dir, 'checkpoint'), user.uid, readFileSync(resignWith));
  execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, join(dir, 'checkpoint')]);
}
