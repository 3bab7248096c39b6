/**
 * Resubmission where an exit code does not ask for it (Slurm): once the checkpoint is complete
 * and the run's state saved, the scheduler's command requeues the job, and the scheduler then
 * ends it (SIGTERM), so nothing may be left to do by then.
 */
import type { Logger } from '../log/logger.js';

/**
 * Slurm's answer for a job it requeued itself (preemption with PreemptMode=REQUEUE: the job
 * checkpointed at the SIGTERM that ends it, while Slurm already holds it pending again).
 */
const ALREADY_REQUEUED = /Job is pending execution/;

/** Runs COMMAND; true when the scheduler took the request, or had requeued the job already. */
export async function requeueJob(command: string[], logger: Logger): Promise<boolean> {
  // Only a job being resubmitted pays for loading execa.
  const { execa } = await import('execa');
  logger.log('info', `requeueing the job: ${command.join(' ')}`);
  const result = await execa(command[0], command.slice(1), { reject: false, stdin: 'ignore' });
  if (result.exitCode === 0) return true;
  const said = `${result.stderr}`.trim().split('\n').pop() || result.shortMessage;
  if (ALREADY_REQUEUED.test(said ?? '')) {
    logger.log('info', `the scheduler has requeued the job already (${said}): it runs again and resumes the checkpoint`);
    return true;
  }
  logger.log('error', `${command.join(' ')} failed: ${said}. The checkpoint is kept: submit the job script again to resume it, and with --requeue so that the next checkpoint can requeue the job itself.`);
  return false;
}
