/**
 * The real-part suites run bin/ckpt-run and bin/ckpt-daemon, which load dist/. A suite builds it
 * only when a source is newer than the build (or there is none): tsc rewrites every output, and
 * a rebuild in one lane while another lane's jobs started ckpt-run gave one of them a half-written
 * module ("does not provide an export named 'checkpointIdentity'", the stress run of 29fc39d).
 * scripts/test-all.sh builds once before its lanes, so in a whole run no suite rebuilds.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './launcher-harness.js';

/** The mtimes (ms) of the files under DIR whose names end with SUFFIX. */
function mtimes(dir: string, suffix: string): number[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith(suffix))
      .map((name) => statSync(join(dir, name)).mtimeMs);
  } catch {
    return [];
  }
}

export function ensureBuilt(): void {
  const built = mtimes(join(ROOT, 'dist'), '.js');
  const sources = [...mtimes(join(ROOT, 'src'), '.ts'), statSync(join(ROOT, 'tsconfig.json')).mtimeMs];
  if (built.length > 0 && Math.max(...sources) <= Math.min(...built)) return;
  execFileSync('npx', ['tsc', '-p', ROOT], { stdio: 'pipe' });
}
