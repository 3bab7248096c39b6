/** A non-root account for tests that act as an ordinary user against the root daemon (root only). */
import { execFileSync } from 'node:child_process';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

const idOf = (flag: string, name: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());

/** Creates the account NAME (no home, no login shell) unless it exists. */
export function ensureTestUser(name = 'ckpt-test'): TestUser {
  try {
    idOf('-u', name);
  } catch {
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', name], { stdio: 'pipe' });
  }
  return { name, uid: idOf('-u', name), gid: idOf('-g', name) };
}
