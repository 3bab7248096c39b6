/**
 * Suites that need a real part (CRIU, OAR) run only where it is there. In CI it must be there:
 * a missing part fails the suite instead of skipping it. Elsewhere the skip is loud.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { canDumpOtherUsers, criuUnusable } from '../../src/engine/criu/criu-probe.js';

export const IN_CI = process.env.CI === 'true';

const INSTALL_CRIU = resolve(import.meta.dirname, '../../scripts/install-criu.sh');
export const CRIU_PREFIX = '/opt/ckpt-run/criu';
export const PRLIMIT_SHIM = join(CRIU_PREFIX, 'bin/criu-prlimit-shim');

/** undefined when the part is usable, else why not. */
export type Probe = () => string | undefined;

/** The product's own question (src/engine/criu/criu-probe.ts), of the criu the suites use. */
export const criuProbe: Probe = () => criuUnusable(process.env.CKPT_CRIU ?? 'criu');

/** criu installed in CI if missing (with the prlimit shim if asked), as scripts/test-all.sh does; elsewhere only probed. */
export function criuReady(options: { withPrlimitShim?: boolean } = {}): Probe {
  return () => {
    const problem = criuProbe();
    if (problem === undefined || !IN_CI || process.geteuid?.() !== 0) return problem;
    execFileSync('bash', [INSTALL_CRIU, ...(options.withPrlimitShim ? ['--with-prlimit-shim'] : [])], { stdio: 'inherit', timeout: 600_000 });
    return criuProbe();
  };
}

/**
 * The criu that can dump another user's process here: criu itself where root has
 * CAP_SYS_RESOURCE in its effective set (real nodes), else the opt-in prlimit shim of
 * scripts/install-criu.sh --with-prlimit-shim (installed in CI if missing); undefined without either.
 */
export function criuForUsers(): string | undefined {
  if (process.env.CKPT_CRIU) return process.env.CKPT_CRIU;
  if (canDumpOtherUsers()) return 'criu';
  if (!existsSync(PRLIMIT_SHIM) && IN_CI) execFileSync('bash', [INSTALL_CRIU, '--with-prlimit-shim'], { stdio: 'inherit', timeout: 600_000 });
  return existsSync(PRLIMIT_SHIM) ? PRLIMIT_SHIM : undefined;
}

/** criuForUsers(), for a suite whose jobs are an ordinary user's: without one, a clear error instead of a skip. */
export function criuForUser(): string {
  const criu = criuForUsers();
  if (!criu) throw new Error("no criu can dump an ordinary user's process here: root lacks CAP_SYS_RESOURCE and the prlimit shim is missing (bash scripts/install-criu.sh --with-prlimit-shim)");
  return criu;
}

/** Whether to run a suite; in CI a missing part throws, elsewhere it prints why it skips. */
export function realPartAvailable(suite: string, probe: Probe): boolean {
  const problem = probe();
  if (problem === undefined) return true;
  if (IN_CI) throw new Error(`${suite}: the real part is missing in CI (${problem}); real-part suites must run in CI`);
  console.warn(`\n*** SKIPPED ${suite}: ${problem} ***\n`);
  return false;
}
