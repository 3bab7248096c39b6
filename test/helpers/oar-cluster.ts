/**
 * The real one-node OAR 2.5.9 cluster of scripts/oar-local.sh, driven the way a user drives it:
 * oarsub/oardel as a non-root user (never root: when a user's last job on a node ends, OAR
 * wipes that user's files in /tmp, /var/tmp and /dev/shm), oarstat to follow jobs. Every wait
 * polls oarstat with a bound and says what it waited for; nothing sleeps and hopes.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './launcher-harness.js';
import type { Probe } from './real-parts.js';
import { pollFor } from './poll.js';

const run = promisify(execFile);

export const OAR_LOCAL = join(ROOT, 'scripts/oar-local.sh');

/** What a real OAR needs here: root (to start it and submit as another user), apt, cgroup v1. */
export const oarProbe: Probe = () => {
  if (process.geteuid?.() !== 0) return 'needs root (starts OAR with scripts/oar-local.sh, submits as a test user)';
  if (!existsSync('/usr/bin/apt-get') && !existsSync('/usr/sbin/oar-server')) return 'neither OAR nor apt-get (Debian) to install it';
  if (!existsSync('/sys/fs/cgroup/cpuset/tasks')) return "no cgroup v1 cpuset hierarchy: OAR's job cgroups (and test c) need it";
  return undefined;
};

export interface ClusterHandle {
  /** The cluster was already up before the suite: leave it running. */
  wasUp: boolean;
}

/**
 * Starts the cluster (idempotent; installs OAR if missing). OAR_LOCAL_SCHED_MIN_INTERVAL=1 lets
 * the scheduler run again 1 s after its last run, so that a submission does not wait for
 * Almighty's 10 s idle tick (oarsub -> Running in ~2 s instead of up to 13 s).
 */
export function startCluster(): ClusterHandle {
  let wasUp = false;
  try {
    execFileSync('bash', [OAR_LOCAL, 'status'], { stdio: 'pipe' });
    wasUp = true;
  } catch {
    wasUp = false;
  }
  execFileSync('bash', [OAR_LOCAL, 'start'], {
    stdio: 'inherit',
    env: { ...process.env, OAR_LOCAL_SCHED_MIN_INTERVAL: '1' },
    timeout: 600_000,
  });
  return { wasUp };
}

export function stopCluster(): void {
  execFileSync('bash', [OAR_LOCAL, 'stop'], { stdio: 'inherit', timeout: 120_000 });
}

export interface OarUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A non-root user that can submit jobs (scripts/oar-local.sh adduser). */
export function ensureOarUser(name: string): OarUser {
  execFileSync('bash', [OAR_LOCAL, 'adduser', name], { stdio: 'pipe' });
  const [, , uid, gid, , home] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':');
  if (Number(uid) === 0) throw new Error(`${name} has uid 0: jobs must never run as root`);
  return { name, uid: Number(uid), gid: Number(gid), home };
}

/** A job as `oarstat -J -f` shows it. */
export interface OarJob {
  id: number;
  arrayId: number;
  owner: string;
  name: string;
  state: string;
  /** The raw wait status OAR records (exit code << 8 | signal), null while running. */
  exitCode: number | null;
  /** The job this one is the automatic resubmission of (0: none). */
  resubmitJobId: number;
  startTime: number;
  stopTime: number;
  launchingDirectory: string;
  stdoutFile: string;
  stderrFile: string;
  events: Array<{ type: string; description: string }>;
}

export const FINAL_STATES = new Set(['Terminated', 'Error']);
const ACTIVE_STATES = ['Waiting', 'Hold', 'toLaunch', 'toError', 'toAckReservation', 'Launching', 'Running', 'Suspended', 'Resuming', 'Finishing'];
/** ACTIVE_STATES as an SQL list, for oarstat --sql. */
const ACTIVE_STATES_SQL = ACTIVE_STATES.map((state) => `'${state}'`).join(',');

interface RawJob {
  Job_Id: number;
  array_id: number;
  name?: string | null;
  owner?: string;
  state: string;
  exit_code?: number | null;
  resubmit_job_id?: number;
  startTime?: number;
  stopTime?: number;
  launchingDirectory: string;
  stdout_file: string;
  stderr_file: string;
  events?: Array<{ type: string; description: string }>;
}

function parseJobs(json: string): OarJob[] {
  const trimmed = json.trim();
  if (trimmed === '') return [];
  const raw = JSON.parse(trimmed) as Record<string, RawJob>;
  return Object.values(raw)
    .map((job) => ({
      id: Number(job.Job_Id),
      arrayId: Number(job.array_id),
      owner: job.owner ?? '',
      name: job.name ?? '',
      state: job.state,
      exitCode: job.exit_code === undefined || job.exit_code === null ? null : Number(job.exit_code),
      resubmitJobId: Number(job.resubmit_job_id ?? 0),
      startTime: Number(job.startTime ?? 0),
      stopTime: Number(job.stopTime ?? 0),
      launchingDirectory: job.launchingDirectory,
      stdoutFile: job.stdout_file,
      stderrFile: job.stderr_file,
      events: (job.events ?? []).map((event) => ({ type: event.type, description: event.description })),
    }))
    .sort((a, b) => a.id - b.id);
}

/** Every job of the array ARRAYID: the original job and its automatic resubmissions. */
export async function arrayJobs(arrayId: number): Promise<OarJob[]> {
  const { stdout } = await run('oarstat', ['-J', '-f', '--sql', `array_id = ${Number(arrayId)}`], { maxBuffer: 16 << 20 });
  return parseJobs(stdout);
}

export async function oarJob(id: number): Promise<OarJob> {
  const { stdout } = await run('oarstat', ['-J', '-f', '-j', String(Number(id))], { maxBuffer: 16 << 20 });
  const [job] = parseJobs(stdout);
  if (!job) throw new Error(`oarstat does not know job ${id}`);
  return job;
}

/** The program's exit code and the killing signal, from OAR's raw wait status. */
export function exitStatusOf(job: OarJob): { code: number; signal: number } | undefined {
  if (job.exitCode === null) return undefined;
  return { code: job.exitCode >> 8, signal: job.exitCode & 0x7f };
}

/**
 * `oarsub ARGS` as USER from DIR (the job's working directory); returns the job id. oarsub
 * takes the launching directory from $PWD, not from its real working directory.
 */
export function oarsub(user: OarUser, dir: string, args: string[]): number {
  const output = execFileSync('runuser', ['-u', user.name, '--', 'oarsub', ...args], {
    cwd: dir,
    env: { ...process.env, PWD: dir },
    encoding: 'utf8',
    stdio: 'pipe',
  });
  const match = /^OAR_JOB_ID=(\d+)$/m.exec(output);
  if (!match) throw new Error(`oarsub ${args.join(' ')} gave no job id:\n${output}`);
  return Number(match[1]);
}

/** `oardel --checkpoint ID` as the job's owner: OAR sends the job its checkpoint signal. */
export function oardelCheckpoint(user: OarUser, id: number): string {
  return execFileSync('runuser', ['-u', user.name, '--', 'oardel', '--checkpoint', String(id)], { encoding: 'utf8', stdio: 'pipe' }).trim();
}

/** Waits until job ID is in one of STATES; returns it. A final state that is not wanted fails at once. */
export async function waitForState(id: number, states: string[], timeoutMs: number): Promise<OarJob> {
  return pollFor(
    async () => {
      const job = await oarJob(id);
      if (states.includes(job.state)) return job;
      if (FINAL_STATES.has(job.state)) throw new Error(`job ${id} ended (${job.state}, exit_code ${job.exitCode}) while waiting for ${states.join('/')}`);
      return undefined;
    },
    `job ${id} to be ${states.join(' or ')}`,
    timeoutMs,
  );
}

export interface ChainOptions {
  /** Bound for the whole chain, from the first job's submission to the last job's end. */
  timeoutMs: number;
  /** Called once per job when OAR shows it Running (index 0 is the first job). */
  onRunning?: (job: OarJob, index: number) => Promise<void> | void;
  /** Called once per job when it reached a final state. */
  onEnded?: (job: OarJob, index: number) => Promise<void> | void;
}

/**
 * Follows FIRSTID through OAR's automatic resubmissions until a job ends without one. OAR
 * resubmits (NodeChangeState) before it sets the old job Terminated, so once a job is final
 * its resubmission, if any, is already in the database: no wait is needed to be sure there is
 * none.
 */
export async function followChain(firstId: number, options: ChainOptions): Promise<OarJob[]> {
  const first = await oarJob(firstId);
  const chain: OarJob[] = [];
  const seenRunning = new Set<number>();
  let currentId = firstId;
  let current: OarJob | undefined;
  return pollFor(
    async () => {
      for (;;) {
        const jobs = await arrayJobs(first.arrayId);
        const job = jobs.find((candidate) => candidate.id === currentId);
        if (!job) throw new Error(`job ${currentId} vanished from array ${first.arrayId}`);
        current = job;
        if ((job.state === 'Running' || FINAL_STATES.has(job.state)) && !seenRunning.has(job.id)) {
          seenRunning.add(job.id);
          if (job.state === 'Running') await options.onRunning?.(job, chain.length);
        }
        if (!FINAL_STATES.has(job.state)) return undefined;
        chain.push(job);
        await options.onEnded?.(job, chain.length - 1);
        const next = jobs.find((candidate) => candidate.resubmitJobId === job.id);
        if (!next) return chain;
        currentId = next.id;
      }
    },
    () => `the chain of job ${firstId} to end: ${formatChain(current && !chain.includes(current) ? [...chain, current] : chain)}${current?.state === 'Waiting' ? `; ${activeJobsLine()}` : ''}`,
    options.timeoutMs,
  );
}

/** What holds the node while a job waits: every active job of any user ("219 ckptoar preempt-a Running"). */
function activeJobsLine(): string {
  try {
    const stdout = execFileSync('oarstat', ['-J', '-f', '--sql', `state IN (${ACTIVE_STATES_SQL})`], { encoding: 'utf8', maxBuffer: 16 << 20 });
    const jobs = parseJobs(stdout).map((job) => `${job.id} ${job.owner} ${job.name} ${job.state}`);
    return `active jobs on the cluster: ${jobs.join(', ') || 'none'}`;
  } catch (error) {
    return `active jobs unknown (oarstat: ${(error as Error).message.split('\n')[0]})`;
  }
}

/** "18 Terminated exit 99 (ran 63 s) -> 19 Terminated exit 42 (ran 30 s)". */
export function formatChain(jobs: OarJob[]): string {
  return jobs
    .map((job) => {
      const status = exitStatusOf(job);
      const exit = status ? `exit_code ${job.exitCode} (exit ${status.code}${status.signal ? `, signal ${status.signal}` : ''})` : 'no exit code yet';
      const ran = job.stopTime && job.startTime ? `, ran ${job.stopTime - job.startTime} s` : '';
      const resubmitted = job.events.find((event) => event.type === 'RESUBMIT_JOB_AUTOMATICALLY');
      return `job ${job.id} ${job.state} ${exit}${ran}${resubmitted ? ', resubmitted' : ''}`;
    })
    .join(' -> ');
}

/** Deletes USER's jobs that are still active (after a failed test) and waits until they are final. */
export async function deleteActiveJobs(user: OarUser): Promise<void> {
  const { stdout } = await run('oarstat', ['-J', '-f', '--sql', `job_user = '${user.name}' AND state IN (${ACTIVE_STATES_SQL})`], { maxBuffer: 16 << 20 });
  const active = parseJobs(stdout);
  if (active.length === 0) return;
  console.warn(`oar e2e: deleting ${user.name}'s jobs still active: ${active.map((job) => `${job.id} (${job.state})`).join(', ')}`);
  for (const job of active) {
    await run('runuser', ['-u', user.name, '--', 'oardel', String(job.id)]).catch(() => undefined);
  }
  for (const job of active) await waitForState(job.id, [...FINAL_STATES], 60_000).catch(() => undefined);
}
