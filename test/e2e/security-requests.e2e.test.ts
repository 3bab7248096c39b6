/** The adversarial suite (test/helpers/security-suite.ts): attacks on request files. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { HALF_WRITTEN_GRACE_MS } from '../../src/daemon/spool.js';
import { waitUntil } from '../helpers/poll.js';
import { fingerprint, requestAs, snapshot, userFolder, userProcess } from '../helpers/security-fixtures.js';
import {
  adversarialSuite, attack, attacker, box, daemon, fileState, refused, report, victim, victimJob, victimRequest, victimRun,
} from '../helpers/security-suite.js';
import { asUser, shAsUser } from '../helpers/security-users.js';

adversarialSuite('request files', () => {
  it('refuses request files that are huge, binary, half-written, symlinks, FIFOs, hard links or folders', async () => {
    const [process0, folder0, file0] = [fingerprint(victimJob), snapshot(victimRun), fileState(victimRequest)];
    const spool = box.spool;
    shAsUser(attacker, 'cd "$1" && truncate -s 10G .huge && printf "\\n" >> .huge && mv .huge sec-huge.checkpoint', spool);
    shAsUser(attacker, 'cd "$1" && printf "1\\n/tmp\\000x\\n" > .binary && mv .binary sec-binary.checkpoint', spool);
    attack('sec-half.checkpoint', `${victimJob}\n/tm`);
    const halfWritten = Date.now();
    shAsUser(attacker, 'ln -s "$1" "$2/sec-symlink.checkpoint"', victimRequest, spool);
    shAsUser(attacker, 'mkfifo "$1/sec-fifo.checkpoint"', spool);
    shAsUser(attacker, 'ln "$1" "$2/sec-hardlink.checkpoint"', victimRequest, spool);
    shAsUser(attacker, 'mkdir "$1/sec-folder.checkpoint"', spool);
    const cases: Array<[string, string, string]> = [
      ['sec-huge.checkpoint', 'a huge (10 GiB, sparse) request file', `the request is ${10 * 2 ** 30 + 1} bytes, more than 8192`],
      ['sec-binary.checkpoint', 'a binary request file', 'binary content'],
      ['sec-symlink.checkpoint', "a request that is a symlink to a victim's request-shaped file", 'the request is a symlink'],
      ['sec-fifo.checkpoint', 'a request that is a FIFO', 'the request is a FIFO, not a regular file'],
      ['sec-hardlink.checkpoint', "a request that is a hard link to a victim's request-shaped file", 'the request file has other hard links (whose owner would it be?)'],
      ['sec-folder.checkpoint', 'a request that is a folder', 'the request is a directory, not a regular file'],
      ['sec-half.checkpoint', 'a half-written request never completed', 'no final newline (half-written?)'],
    ];
    for (const [name, what, reason] of cases) {
      const verdict = await daemon.spoolRefusal(name, 3 * HALF_WRITTEN_GRACE_MS + 10_000);
      expect(verdict.reason).toBe(reason);
      expect(existsSync(join(spool, name))).toBe(false);
      report(what, refused(verdict));
    }
    expect(Date.now() - halfWritten).toBeGreaterThanOrEqual(HALF_WRITTEN_GRACE_MS);
    expect(fingerprint(victimJob)).toEqual(process0);
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(fileState(victimRequest)).toBe(file0);
    expect(readdirSync(join(spool, '.ckpt-daemon'))).toEqual([]);
  });

  it('serves a legitimate request within a bound after a flood of 2000 junk requests', async () => {
    const flood = 2000;
    const code = `const fs = require('fs'); const c = require('crypto');
      for (let i = 0; i < ${flood}; i++) fs.writeFileSync(process.argv[1] + '/sec-flood-' + i + '.resume', (i % 2 ? 'junk ' : '\\0') + c.randomBytes(48).toString('base64') + '\\n');`;
    asUser(attacker, [process.execPath, '-e', code, box.spool]);
    const legitDir = userFolder(victim, join(box.home(victim), 'run-legit'));
    const legit = (await userProcess(victim, ['sleep', '1000'], 'sleep')).pid;
    const asked = Date.now();
    requestAs(victim, box.spool, 'sec-legit.checkpoint', `${legit}\n${legitDir}\n`);
    const verdict = await daemon.verdict('sec-legit', { timeoutMs: 30_000 });
    const servedIn = (Date.now() - asked) / 1000;
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(existsSync(join(legitDir, 'checkpoint_ok'))).toBe(true);
    const floodRefusals = (): string[] => daemon.lines().filter((line) => new RegExp(`warn: refused sec-flood-\\d+\\.resume from uid ${attacker.uid}: `).test(line));
    await waitUntil(() => floodRefusals().length === flood, `${flood} refusals of the flood`, 60_000);
    const reason = floodRefusals()[0].replace(/^.*?from uid \d+: /, '');
    expect(readdirSync(box.spool).filter((name) => name.startsWith('sec-flood-'))).toEqual([]);
    report(`a flood of ${flood} junk requests`, `each refused ("${reason.replace(/"[^"]*"/, '"…"')}", …); a victim's request written right after served in ${servedIn.toFixed(1)} s`);
    expect(servedIn).toBeLessThan(30);
  });
});
