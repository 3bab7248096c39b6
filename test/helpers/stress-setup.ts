/**
 * vitest's global setup: with CKPT_RUN_TEST_STRESS=N, N busy loops run beside the whole test
 * run, as other jobs on a shared node (README: "Running the tests under load").
 */
import { startCpuLoad, stressLevel } from './cpu-load.js';

export default function setup(): () => void {
  const level = stressLevel();
  if (level === 0) return () => {};
  const load = startCpuLoad(level);
  console.log(`test run under load: ${level} busy loop(s) beside the tests (CKPT_RUN_TEST_STRESS=${level}), PIDs ${load.pids.join(' ')}`);
  return () => load.stop();
}
