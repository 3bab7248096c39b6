/**
 * Busy loops beside the tests, as another job on a shared node: races between a job's processes
 * and the daemon show up more under load, not less. CKPT_RUN_TEST_STRESS=N starts N of them for
 * every real-part suite (scripts/test-all.sh, README "Running the tests under load").
 */
import { spawn } from 'node:child_process';
import { killAll } from '../../src/proc/processes.js';

export interface CpuLoad {
  readonly pids: number[];
  stop(): void;
}

/** Starts COUNT busy loops, each a process of its own (one core each), at the lowest priority a user's job has. */
export function startCpuLoad(count: number): CpuLoad {
  const pids = Array.from({ length: count }, () => {
    const child = spawn('sh', ['-c', 'while :; do :; done'], { detached: true, stdio: 'ignore' });
    child.unref();
    return child.pid as number;
  });
  return { pids, stop: () => killAll(pids, 'SIGKILL') };
}

/** The load asked for by CKPT_RUN_TEST_STRESS (a whole number of busy loops; 0 or unset: none). */
export function stressLevel(env: NodeJS.ProcessEnv = process.env): number {
  const level = Number(env.CKPT_RUN_TEST_STRESS ?? 0);
  if (!Number.isInteger(level) || level < 0) throw new Error(`CKPT_RUN_TEST_STRESS=${env.CKPT_RUN_TEST_STRESS}: a whole number of busy loops is expected`);
  return level;
}
