/** A non-root account for tests that act as an ordinary user against the root daemon (root only). */
import { execFileSync } from 'node:child_process';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

const idOf = (flag: string, name: string): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());

const exists = (name: string): boolean => {
  try {
    idOf('-u', name);
    return true;
  } catch {
    return false;
  }
};

/**
 * Runs useradd or userdel until DONE holds (bounded). The test lanes run side by side: another
 * lane may create the same account at the same moment, or hold /etc/passwd's lock for its own
 * ("cannot lock /etc/passwd; try again later"), so a failed run is retried unless DONE now holds.
 */
function editAccounts(command: 'useradd' | 'userdel', args: string[], done: () => boolean): void {
  let failure = '';
  for (let attempt = 0; attempt < 50 && !done(); attempt++) {
    try {
      execFileSync(command, args, { stdio: 'pipe' });
    } catch (error) {
      failure = String((error as { stderr?: Buffer }).stderr ?? error).trim();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  if (!done()) throw new Error(`${command} ${args.join(' ')}: still not done after 50 attempts over ~5 s: ${failure}`);
}

/** Creates the account NAME (no home, no login shell, with EXTRA useradd options) unless it exists. */
export function addAccount(name: string, extra: string[] = []): void {
  editAccounts('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', ...extra, name], () => exists(name));
}

/** Removes the account NAME. */
export function removeAccount(name: string): void {
  editAccounts('userdel', [name], () => !exists(name));
}

/** The account NAME, created unless it exists. */
export function ensureTestUser(name = 'ckpt-test'): TestUser {
  addAccount(name);
  return { name, uid: idOf('-u', name), gid: idOf('-g', name) };
}
