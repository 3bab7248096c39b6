/** The adversarial suite (test/helpers/security-suite.ts): attacks on the run folder. */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { waitUntil } from '../helpers/poll.js';
import { raceNewImages } from '../helpers/security-attacks.js';
import { etcSnapshot, fingerprint, snapshot, userProcess } from '../helpers/security-fixtures.js';
import {
  adversarialSuite, attack, ATTACKER, attacker, attackerFolder, daemon, home, ownProcess, refused, report, victim, victimRun,
} from '../helpers/security-suite.js';
import { shAsUser } from '../helpers/security-users.js';

adversarialSuite('the run folder', () => {
  it("refuses a request whose folder belongs to another user", async () => {
    const own = await ownProcess();
    const [own0, folder0] = [fingerprint(own), snapshot(victimRun)];
    attack('sec-victim-dir.checkpoint', `${own}\n${victimRun}\n`);
    const verdict = await daemon.verdict('sec-victim-dir');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`folder ${victimRun} belongs to uid ${victim.uid}, not to ${ATTACKER} (uid ${attacker.uid})`);
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(fingerprint(own)).toEqual(own0);
    report("request whose DIR is another user's folder", refused(verdict));
  });

  it("refuses a request whose folder is reached through a symlink (to the victim's folder)", async () => {
    const link = home('link-to-victim');
    shAsUser(attacker, 'ln -s "$1" "$2"', victimRun, link);
    const own = await ownProcess();
    const folder0 = snapshot(victimRun);
    attack('sec-dir-link.checkpoint', `${own}\n${link}\n`);
    const verdict = await daemon.verdict('sec-dir-link');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`folder ${link} is reached through a symlink or an indirect path (it is ${victimRun})`);
    expect(snapshot(victimRun)).toEqual(folder0);
    report("request whose DIR is a symlink to another user's folder", refused(verdict));
  });

  it('refuses a checkpoint and a resume whose DIR/checkpoint is a symlink to /etc', async () => {
    const dir = attackerFolder('run-etc');
    shAsUser(attacker, 'ln -s /etc "$1/checkpoint"', dir);
    const own = await ownProcess();
    const [etc0, own0] = [etcSnapshot(), fingerprint(own)];
    attack('sec-etc.checkpoint', `${own}\n${dir}\n`);
    attack('sec-etc-resume.resume', `${dir}\n`);
    const dump = await daemon.verdict('sec-etc');
    const restore = await daemon.verdict('sec-etc-resume');
    for (const verdict of [dump, restore]) {
      expect(verdict.outcome, verdict.line).toBe('refused');
      expect(verdict.reason).toBe(`${dir}/checkpoint is not a directory (a symlink?)`);
    }
    expect(etcSnapshot()).toEqual(etc0);
    expect(fingerprint(own)).toEqual(own0);
    report('checkpoint whose DIR/checkpoint is a symlink to /etc', refused(dump, '/etc untouched'));
    report('resume whose DIR/checkpoint is a symlink to /etc', refused(restore, '/etc untouched'));
  });

  it('removes a DIR/checkpoint.old that is a symlink to /etc as the user: only the link goes', async () => {
    const dir = attackerFolder('run-old-etc');
    shAsUser(attacker, 'ln -s /etc "$1/checkpoint.old"', dir);
    const own = await ownProcess();
    const etc0 = etcSnapshot();
    attack('sec-old-etc.checkpoint', `${own}\n${dir}\n`);
    const verdict = await daemon.verdict('sec-old-etc');
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(etcSnapshot()).toEqual(etc0);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint', 'checkpoint_ok', 'checkpoint_stats']);
    expect(statSync(join(dir, 'checkpoint')).uid).toBe(attacker.uid);
    report('checkpoint whose DIR/checkpoint.old is a symlink to /etc', 'served: the rm, run as the user, removed only the link; /etc untouched');
  });

  it("keeps DIR pinned when the attacker swaps it for a symlink to the victim's folder during the dump", async () => {
    const dir = attackerFolder('run-swap-dir');
    const big = (await userProcess(attacker, ['perl', '-e', '$x = "a" x (128 << 20); sleep 1000'], 'perl')).pid;
    await waitUntil(() => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${big}/status`, 'utf8'))?.[1]) > 128 * 1024, 'the 128 MB program');
    const folder0 = snapshot(victimRun);
    const race = raceNewImages(attacker, dir, 'swap-dir', victimRun);
    attack('sec-swap-dir.checkpoint', `${big}\n${dir}\n`);
    const swapped = await race;
    expect(swapped, 'the swap must land while the daemon still dumps').toMatchObject({ newStillThere: true, okAlready: false });
    const verdict = await daemon.verdict('sec-swap-dir', { timeoutMs: 60_000 });
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(readlinkSync(dir)).toBe(victimRun);
    expect(readdirSync(`${dir}-moved`).sort()).toEqual(['checkpoint', 'checkpoint_ok', 'checkpoint_stats']);
    report("DIR swapped for a symlink to another user's folder while criu dumps", 'served in the pinned folder (where DIR was moved), the symlink never followed; victim untouched');
  });

  it('keeps the new images pinned when the attacker swaps checkpoint.new-* for a symlink to /etc during the dump', async () => {
    const dir = attackerFolder('run-swap-new');
    const big = (await userProcess(attacker, ['perl', '-e', '$x = "a" x (128 << 20); sleep 1000'], 'perl')).pid;
    await waitUntil(() => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${big}/status`, 'utf8'))?.[1]) > 128 * 1024, 'the 128 MB program');
    const etc0 = etcSnapshot();
    const race = raceNewImages(attacker, dir, 'swap-new', '/etc');
    attack('sec-swap-new.checkpoint', `${big}\n${dir}\n`);
    const swapped = await race;
    expect(swapped.okAlready, 'the swap must land while the daemon still dumps').toBe(false);
    const dump = await daemon.verdict('sec-swap-new', { timeoutMs: 60_000 });
    expect(dump.outcome, dump.line).toBe('done');
    // The daemon renamed the attacker's symlink (not /etc) to "checkpoint"; the images stayed where they were written.
    expect(readlinkSync(join(dir, 'checkpoint'))).toBe('/etc');
    expect(readdirSync(join(dir, 'decoy'))).toContain('pages-1.img');
    expect(statSync(join(dir, 'decoy')).uid).toBe(attacker.uid);
    attack('sec-swap-new-resume.resume', `${dir}\n`);
    const restore = await daemon.verdict('sec-swap-new-resume');
    expect(restore.outcome, restore.line).toBe('refused');
    expect(restore.reason).toBe(`${dir}/checkpoint is not a directory (a symlink?)`);
    expect(etcSnapshot()).toEqual(etc0);
    report('checkpoint.new-* swapped for a symlink to /etc while criu dumps, then resumed', `served into the pinned folder, only the link renamed; resume ${refused(restore, '/etc untouched')}`);
  });
});
