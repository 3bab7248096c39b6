/**
 * Whether CRIU can work here, asked the way the product and the test suites both ask it: as
 * root, a criu that passes `criu check`; and, to dump another user's process, CAP_SYS_RESOURCE
 * in the effective set (root in a container often lacks it: criu then fails with "Can't get
 * rlimit 0: Operation not permitted" unless run through the prlimit shim of install-criu.sh).
 */
import { execaSync } from 'execa';
import { effectiveCapabilities } from '../proc/processes.js';

/** linux/capability.h */
const CAP_SYS_RESOURCE = 24n;

/** Why CRIU cannot be used here, or undefined when it can. */
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

/** Whether this process may raise another user's limits, as criu must to dump their processes. */
export function canDumpOtherUsers(): boolean {
  return ((effectiveCapabilities() >> CAP_SYS_RESOURCE) & 1n) === 1n;
}
