/**
 * The tests' one way to act on processes they found by listing /proc: between the listing and
 * the act a process may exit (a shell's child, a dumped tree reaped by init). As in the product
 * (src/proc/processes.ts), one gone in between is skipped, never an error that fails a test by
 * chance. Signalling a listed set is killAll, which already skips the gone.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export { killAll } from '../../src/proc/processes.js';

/** /proc/PID/NAME's text, or undefined once the process is gone (or the file unreadable). */
export function procText(pid: number, name: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${name}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Where the link /proc/PID/NAME (cwd, exe, fd/N) points, or undefined once the process is gone. */
export function procLink(pid: number, name: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/${name}`);
  } catch {
    return undefined;
  }
}

/** The processes of the node (this test runner excepted) for which TEST holds; one that goes while TEST reads it is left out. */
export function processesWhere(test: (pid: number) => boolean): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => {
      if (pid === process.pid) return false;
      try {
        return test(pid);
      } catch {
        return false;
      }
    });
}
