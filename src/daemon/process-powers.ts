/** What /proc says about the powers of a process: more than its user's own processes have? */
import { existsSync, statSync } from 'node:fs';
import { readOrEmpty, threadsOf } from '../proc/processes.js';
import type { Requester } from '../protocol/spool-request.js';

const NO_CAPABILITIES = /^0+$/;

/**
 * Why the process PID (any of its threads) has powers its user's own processes lack, or
 * undefined when it has none: another uid (real, effective, saved or filesystem), a group
 * the user is not in, a capability, or no "dumpable" flag (it ran a setuid program: the
 * kernel then gives the files of /proc/PID to root). Its memory would otherwise land in the user's images.
 */
export function extraPowers(pid: number, requester: Requester): string | undefined {
  if (requester.uid === 0) return undefined;
  let live: string | undefined;
  for (const tid of threadsOf(pid)) {
    const status = readOrEmpty(`/proc/${pid}/task/${tid}/status`);
    // A thread that ended since the listing has no powers left to carry into the images (read
    // as uid "0", it refused a program whose threads come and go: zdtm's pthread_timers_h).
    if (status === '' && !existsSync(`/proc/${pid}/task/${tid}`)) continue;
    const fields = new Map(
      status
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
    );
    const uids = (fields.get('Uid') ?? '').split(/\s+/).map(Number);
    if (uids.length !== 4 || uids.some((uid) => uid !== requester.uid)) return `runs as uid ${uids.join('/')}`;
    const gids = [...(fields.get('Gid') ?? '').split(/\s+/), ...(fields.get('Groups') ?? '').split(/\s+/)].filter(Boolean);
    const foreign = gids.map(Number).find((gid) => !requester.gids.includes(gid));
    if (foreign !== undefined) return `has group ${foreign}, which ${requester.name} is not in`;
    const capabilities = ['CapPrm', 'CapEff', 'CapAmb'].find((name) => !NO_CAPABILITIES.test(fields.get(name) ?? ''));
    if (capabilities) return `has capabilities (${capabilities} ${fields.get(capabilities) || 'unreadable'})`;
    if (live === undefined && !(fields.get('State') ?? '').startsWith('Z')) live = tid;
  }
  // The kernel gives the /proc files of a task without memory (a zombie) to root, whatever it
  // ran: the owner is asked of a live thread. A member with none (a zombie, or gone) has no
  // memory to dump; before, any tree holding an unreaped child was refused (zdtm's zombie00,
  // sigpending).
  if (live === undefined) return undefined;
  const owner = statSync(`/proc/${pid}/task/${live}/status`, { throwIfNoEntry: false })?.uid;
  if (owner !== undefined && owner !== requester.uid) return 'is not dumpable (it ran a setuid or setgid program)';
  return undefined;
}
