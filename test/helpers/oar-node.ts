/**
 * The node side of the scheduler end-to-end tests (OAR, Slurm): ckpt-run on the PATH of the
 * jobs' user, and ckpt-daemon running as root on the default spool folder (OAR does not pass the
 * submitter's environment into jobs, and the example job scripts pass no option to ckpt-run:
 * the jobs use the default /var/lib/checkpoints).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { canDumpOtherUsers } from '../../src/engine/criu/criu-probe.js';
import { DEFAULT_SPOOL_DIR } from '../../src/protocol/spool-request.js';
import { HEARTBEAT_FILE, HEARTBEAT_STALE_MS } from '../../src/protocol/heartbeat.js';
import { ROOT } from './launcher-harness.js';
import type { OarUser } from './oar-cluster.js';
import { RealDaemon } from './real-daemon.js';
import { CRIU_PREFIX, PRLIMIT_SHIM } from './real-parts.js';
import { ensureBuilt } from './build.js';

export const WRAPPER = '/usr/local/bin/ckpt-run';
const WRAPPER_MARK = '# ckpt-run OAR e2e wrapper';
/** Where the package is copied when the user cannot read the checkout (e.g. CI clones under /root). */
const PACKAGE_COPY = '/opt/ckpt-run/oar-e2e-package';

const canRun = (user: OarUser, argv: string[]): boolean => {
  try {
    execFileSync('runuser', ['-u', user.name, '--', ...argv], { stdio: 'pipe', cwd: user.home, timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
};

/**
 * A copy of the package USER can run: the checkout itself when USER can read it, else a copy
 * (bin, dist, node_modules, examples, scripts) in PACKAGE_COPY. Returns its root.
 */
export function packageForUser(user: OarUser): string {
  const usable = (root: string): boolean =>
    canRun(user, [
      'test', '-r', join(root, 'bin/ckpt-run'), '-a', '-r', join(root, 'dist/cli/ckpt-run.js'), '-a', '-r', join(root, 'node_modules/commander/package.json'),
      '-a', '-x', join(root, 'examples/oar-job.sh'), '-a', '-x', join(root, 'examples/counter.sh'),
    ]);
  if (usable(ROOT)) return ROOT;
  console.log(`oar e2e: ${user.name} cannot read ${ROOT}: copying the package to ${PACKAGE_COPY}`);
  rmSync(PACKAGE_COPY, { recursive: true, force: true });
  mkdirSync(PACKAGE_COPY, { recursive: true, mode: 0o755 });
  for (const entry of ['package.json', 'bin', 'dist', 'node_modules', 'examples', 'scripts']) {
    cpSync(join(ROOT, entry), join(PACKAGE_COPY, entry), { recursive: true });
  }
  execFileSync('chmod', ['-R', 'a+rX', PACKAGE_COPY]);
  execFileSync('chmod', ['a+x', '/opt', '/opt/ckpt-run']);
  if (!usable(PACKAGE_COPY)) throw new Error(`${user.name} cannot read the package copy in ${PACKAGE_COPY} either`);
  return PACKAGE_COPY;
}

/**
 * Installs WRAPPER, which runs PACKAGE's bin/ckpt-run with this node, for every user (the jobs
 * run `exec ckpt-run -- …`; `exec` in the wrapper too keeps one process for OAR's signal).
 * Returns how to undo it. A ckpt-run that this suite did not install is never overwritten.
 */
export function installWrapper(user: OarUser, packageRoot: string): () => void {
  if (existsSync(WRAPPER) && !readFileSync(WRAPPER, 'utf8').includes(WRAPPER_MARK)) {
    throw new Error(`${WRAPPER} exists and is not this suite's wrapper: not overwriting it (remove it, or run the suite elsewhere)`);
  }
  if (!canRun(user, ['test', '-x', process.execPath])) throw new Error(`${user.name} cannot run node (${process.execPath})`);
  writeFileSync(WRAPPER, `#!/bin/sh\n${WRAPPER_MARK} (test/e2e/oar.e2e.test.ts)\nexec ${process.execPath} ${packageRoot}/bin/ckpt-run "$@"\n`, { mode: 0o755 });
  if (!canRun(user, [WRAPPER, '--help'])) throw new Error(`${user.name} cannot run ${WRAPPER} (${packageRoot}/bin/ckpt-run)`);
  return () => {
    if (existsSync(WRAPPER) && readFileSync(WRAPPER, 'utf8').includes(WRAPPER_MARK)) rmSync(WRAPPER);
  };
}

/** Installs CRIU (and the prlimit shim) when missing; returns the criu command for the daemon. */
export function ensureCriu(): string {
  const needShim = !canDumpOtherUsers();
  const present = needShim ? existsSync(PRLIMIT_SHIM) : existsSync(join(CRIU_PREFIX, 'bin/criu')) || commandWorks('criu', ['--version']);
  if (!present) {
    execFileSync('bash', [join(ROOT, 'scripts/install-criu.sh'), ...(needShim ? ['--with-prlimit-shim'] : [])], { stdio: 'inherit', timeout: 600_000 });
  }
  if (needShim) return PRLIMIT_SHIM;
  return existsSync(join(CRIU_PREFIX, 'bin/criu')) ? join(CRIU_PREFIX, 'bin/criu') : 'criu';
}

function commandWorks(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Starts bin/ckpt-daemon as root on the default spool; refuses when another daemon serves it. */
export async function startNodeDaemon(criu: string, logPath: string, imageKey = join(dirname(logPath), 'image-key', 'image.key')): Promise<RealDaemon> {
  const heartbeat = join(DEFAULT_SPOOL_DIR, HEARTBEAT_FILE);
  if (existsSync(heartbeat) && Date.now() - statSync(heartbeat).mtimeMs < HEARTBEAT_STALE_MS) {
    throw new Error(`another ckpt-daemon serves ${DEFAULT_SPOOL_DIR} (its heartbeat ${heartbeat} is fresh): stop it first`);
  }
  return RealDaemon.start({ spool: DEFAULT_SPOOL_DIR, logPath, criu, imageKey });
}

export interface UserPackage {
  /** The package USER runs (the checkout, or a copy of it). */
  pkg: string;
  /** A fresh folder of USER's, in USER's home, for the suite's jobs (and the daemon's log). */
  base: string;
  /** Removes the wrapper and a package copy. */
  tearDown(): void;
}

export interface SchedulerNode extends UserPackage {
  daemon: RealDaemon;
  /** Stops the daemon (saying where its log is), removes the wrapper and a package copy. */
  tearDown(): Promise<void>;
}

/**
 * Builds the package, makes it runnable by USER (wrapper on the PATH) and makes a fresh folder
 * PREFIX-XXXXXX in USER's home (the suite's earlier ones removed: their jobs are long gone;
 * never /tmp, which OAR wipes when a user's last job ends). Enough for jobs that need no daemon
 * (--engine app).
 */
export function preparePackage(user: OarUser, prefix: string): UserPackage {
  ensureBuilt();
  const pkg = packageForUser(user);
  const removeWrapper = installWrapper(user, pkg);
  for (const entry of readdirSync(user.home).filter((name) => name.startsWith(`${prefix}-`))) rmSync(join(user.home, entry), { recursive: true, force: true });
  const base = mkdtempSync(join(user.home, `${prefix}-`));
  chownSync(base, user.uid, user.gid);
  return {
    pkg,
    base,
    tearDown() {
      removeWrapper();
      if (pkg !== ROOT) rmSync(pkg, { recursive: true, force: true });
    },
  };
}

/** preparePackage, and the node daemon started (CRIU installed if missing). */
export async function prepareSchedulerNode(user: OarUser, prefix: string): Promise<SchedulerNode> {
  const criu = ensureCriu();
  const prepared = preparePackage(user, prefix);
  const { pkg, base } = prepared;
  const daemon = await startNodeDaemon(criu, join(base, 'ckpt-daemon.log'));
  console.log(`${prefix}: user ${user.name} (uid ${user.uid}), package ${pkg}, daemon on ${DEFAULT_SPOOL_DIR} with ${criu}, folders in ${base}`);
  return {
    pkg,
    base,
    daemon,
    async tearDown() {
      console.log(`${prefix}: ckpt-daemon stopped (exit code ${await daemon.stop()}); its log: ${daemon.logPath}`);
      prepared.tearDown();
    },
  };
}
