/**
 * Suites that need a real part (CRIU, OAR) run only where it is there. In CI it must be there:
 * a missing part fails the suite instead of skipping it. Elsewhere the skip is loud.
 */
import { execFileSync } from 'node:child_process';

export const IN_CI = process.env.CI === 'true';

/** undefined when the part is usable, else why not. */
export type Probe = () => string | undefined;

export const criuProbe: Probe = () => {
  if (process.geteuid?.() !== 0) return 'needs root';
  try {
    execFileSync(process.env.CKPT_CRIU ?? 'criu', ['check'], { stdio: 'pipe', timeout: 30_000 });
    return undefined;
  } catch (error) {
    return `"criu check" failed or criu is missing (sudo bash scripts/install-criu.sh): ${(error as Error).message.split('\n')[0]}`;
  }
};

/** Whether to run a suite; in CI a missing part throws, elsewhere it prints why it skips. */
export function realPartAvailable(suite: string, probe: Probe): boolean {
  const problem = probe();
  if (problem === undefined) return true;
  if (IN_CI) throw new Error(`${suite}: the real part is missing in CI (${problem}); real-part suites must run in CI`);
  console.warn(`\n*** SKIPPED ${suite}: ${problem} ***\n`);
  return false;
}
