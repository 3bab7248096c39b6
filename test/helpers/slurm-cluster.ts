/**
 * The real one-node Slurm 22.05 cluster of scripts/slurm-local.sh, driven as a user drives it:
 * sbatch, scancel and scontrol as a non-root user; `scontrol show job` to follow a job.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './launcher-harness.js';
import type { OarUser } from './oar-cluster.js';
import type { Probe } from './real-parts.js';

export const SLURM_LOCAL = join(ROOT, 'scripts/slurm-local.sh');

export const slurmProbe: Probe = () => {
  if (process.geteuid?.() !== 0) return 'needs root (starts Slurm with scripts/slurm-local.sh, submits as a test user)';
  if (!existsSync('/usr/bin/apt-get') && !existsSync('/usr/sbin/slurmctld')) return 'neither Slurm nor apt-get (Debian) to install it';
  return undefined;
};

/** Starts the cluster unless it runs; returns whether it was up already (then leave it running). */
export function startSlurm(): boolean {
  try {
    execFileSync('bash', [SLURM_LOCAL, 'status'], { stdio: 'pipe' });
    return true;
  } catch {
    execFileSync('bash', [SLURM_LOCAL, 'start'], { stdio: 'inherit' });
    return false;
  }
}

export function stopSlurm(): void {
  execFileSync('bash', [SLURM_LOCAL, 'stop'], { stdio: 'inherit' });
}

/** A command of Slurm's, run as USER (the job's owner). */
export function asUser(user: OarUser, argv: string[], cwd = user.home): string {
  return execFileSync('runuser', ['-u', user.name, '--', ...argv], { encoding: 'utf8', stdio: 'pipe', cwd }).trim();
}

/** `sbatch --parsable ARGS` in DIR as USER; the job id. */
export function sbatch(user: OarUser, dir: string, args: string[]): number {
  return Number(asUser(user, ['sbatch', '--parsable', '--chdir', dir, ...args], dir).split(';')[0]);
}

/** `scontrol show job -o ID` as fields (JobState, Restarts, ExitCode, …); undefined once Slurm forgot it. */
export function slurmJob(id: number): Record<string, string> | undefined {
  let line: string;
  try {
    line = execFileSync('scontrol', ['show', 'job', '-o', String(id)], { encoding: 'utf8', stdio: 'pipe' }).trim();
  } catch {
    return undefined;
  }
  return Object.fromEntries(line.split(' ').map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)]));
}

/** The job states after which Slurm runs a job no more (a requeued job is PENDING again first). */
export const SLURM_FINAL_STATES = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY)$/;

/** A suite's end: its jobs still queued or running are cancelled (as their user), so that none outlives it. */
export function cancelUnfinished(user: OarUser, jobs: number[]): void {
  for (const id of jobs) if (!SLURM_FINAL_STATES.test(slurmJob(id)?.JobState ?? 'COMPLETED')) asUser(user, ['scancel', String(id)]);
}
