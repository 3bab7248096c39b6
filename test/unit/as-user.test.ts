/**
 * How the root daemon runs a program as a user (src/proc/as-user.ts): through root's own
 * setpriv, never with the uid/gid spawn options, with which the user could stop the child
 * before its exec and so the daemon's whole event loop (test/integration/daemon-user-commands.test.ts
 * shows the stop; here, the argv and the rule on src/).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { asUserArgv, SETPRIV } from '../../src/proc/as-user.js';

const SRC = resolve(import.meta.dirname, '../../src');

/** An options object handing a process a uid: `uid: requester.uid`, `uid: 1000`. */
const UID_OPTION = /\buid:\s*(?:[\w.]+\.uid\b|\d+)/;
/** A module that starts processes. */
const STARTS_PROCESSES = /from\s+["'](?:node:child_process|execa)["']/;

/** The modules of SOURCES (path → text) that start processes and hand one a uid. */
function withUidOption(sources: Map<string, string>): string[] {
  return [...sources].filter(([, text]) => STARTS_PROCESSES.test(text) && UID_OPTION.test(text)).map(([path]) => path);
}

describe('asUserArgv', () => {
  it("runs the program through root's setpriv, by absolute path, with the user's uid and gid and no other group", () => {
    expect(asUserArgv({ uid: 1234, gid: 5678 }, ['rm', '-rf', '--', '/x/checkpoint.old'])).toEqual([
      SETPRIV, '--reuid=1234', '--regid=5678', '--clear-groups', '--', 'rm', '-rf', '--', '/x/checkpoint.old',
    ]);
    expect(SETPRIV.startsWith('/')).toBe(true);
  });

  it('an argument that looks like an option is the program, never an option of setpriv', () => {
    expect(asUserArgv({ uid: 1, gid: 1 }, ['--groups=0', 'sh']).slice(4)).toEqual(['--', '--groups=0', 'sh']);
  });
});

describe('no module of src/ starts a process with the uid/gid spawn options', () => {
  it('(they run the child as the user before its exec, while spawn blocks the daemon)', () => {
    const sources = new Map<string, string>();
    for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts')) sources.set(relative(SRC, join(entry.parentPath, entry.name)), readFileSync(join(entry.parentPath, entry.name), 'utf8'));
    }
    expect(withUidOption(sources)).toEqual([]);
  });

  it('the check itself catches the forms the daemon used', () => {
    const spawner = (options: string): string => `import { execa } from "execa";\nawait execa('rm', [], ${options});`;
    expect(withUidOption(new Map([
      ['a.ts', spawner('{ uid: requester.uid, gid: requester.gid, reject: false }')],
      ['b.ts', `import { spawn } from "node:child_process";\nconst as = { uid: 1000, gid: 1000 };`],
      ['c.ts', spawner('{ ...options, uid: 0 }')],
      ['d.ts', `const owner = { uid: stats.uid, gid: stats.gid }; // starts nothing`],
      ['e.ts', spawner('{ reject: false }')],
    ]))).toEqual(['a.ts', 'b.ts', 'c.ts']);
  });
});
