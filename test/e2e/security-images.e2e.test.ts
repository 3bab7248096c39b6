/** The adversarial suite (test/helpers/security-suite.ts): attacks on images. */
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseDaemonReport } from '../../src/protocol/daemon-report.js';
import { isGone } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';
import { cgroupProcs, commOf, createJobCpuset, fingerprint, handImagesTo, userProcess } from '../helpers/security-fixtures.js';
import {
  adversarialSuite, attack, ATTACKER, attacker, attackerFolder, box, daemon, daemonReport, exited, fileState, imageKeyPath, refused, report, rootImages, VICTIM, victim,
} from '../helpers/security-suite.js';
import { asUser, shAsUser, type SuiteUser } from '../helpers/security-users.js';

adversarialSuite('images', () => {
  it("refuses root's real images handed to the user as they are (signed for root): refused before criu runs", async () => {
    const marker = join(box.rootDir, 'marker-asis');
    const { pid, run } = await rootImages('sec-img-asis', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > "$1"; done', 'sh', marker], 'sh');
    const marker0 = fileState(marker);
    const dir = attackerFolder('run-img-asis');
    handImagesTo(attacker, run, dir);
    attack('sec-img-asis-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-img-asis-resume');
    expect(verdict.outcome, verdict.line).not.toBe('done');
    expect(verdict.reason).toMatch(/^images not made by this cluster's ckpt-daemon, or changed since: the signature .* does not match the images \(.*made for another user/);
    expect(isGone(pid)).toBe(true);
    expect(fileState(marker)).toBe(marker0);
    expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
    report("resume of root's real images handed to the user as they are (signed for root)", refused(verdict, 'criu never ran, the process never came back'));
  });

  it('refuses to restore images whose credentials say uid 0 (root\'s real images): the tree is killed before it runs', async () => {
    const marker = join(box.rootDir, 'marker');
    const { pid, run } = await rootImages('sec-img-uid0', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > "$1"; done', 'sh', marker], 'sh');
    const marker0 = fileState(marker);
    const dir = attackerFolder('run-img-uid0');
    handImagesTo(attacker, run, dir, imageKeyPath());
    attack('sec-img-uid0-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-img-uid0-resume');
    expect(verdict.outcome, verdict.line).toBe('failed');
    expect(verdict.reason).toBe(`restored process ${pid} runs as uid 0 0 0 0, not as uid ${attacker.uid}; the restored tree is killed`);
    await waitUntil(() => isGone(pid), 'the refused tree to be dead');
    // The loop rewrites the marker at once whenever it runs: it never ran after the restore.
    expect(fileState(marker)).toBe(marker0);
    expect(await daemonReport(dir, 'restore_failed')).toBe(verdict.reason);
    expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
    expect(statSync(join(dir, 'checkpoint')).uid).toBe(attacker.uid);
    report("resume of root's real images handed to the user (credentials uid 0)", refused(verdict, 'the tree killed before running user code'));
  });

  const crafted: Array<{ name: string; what: string; argv: (a: SuiteUser) => string[]; reason: (pid: number, a: SuiteUser) => string }> = [
    {
      name: 'gid0',
      what: 'group 0',
      argv: (a) => ['setpriv', `--reuid=${a.uid}`, '--regid=0', '--clear-groups', 'sleep', '1000'],
      reason: (pid, a) => `restored process ${pid} has group 0, which uid ${a.uid} is not in; the restored tree is killed`,
    },
    {
      name: 'caps',
      what: 'a capability (CAP_NET_RAW)',
      argv: (a) => ['setpriv', `--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', '--inh-caps=+net_raw', '--ambient-caps=+net_raw', 'sleep', '1000'],
      reason: (pid) => `restored process ${pid} has capabilities (CapInh: 0000000000002000); the restored tree is killed`,
    },
    {
      name: 'rt',
      what: 'real-time scheduling (SCHED_FIFO)',
      argv: (a) => ['chrt', '--fifo', '10', 'setpriv', `--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', 'sleep', '1000'],
      reason: (pid) => `restored process ${pid} has the real-time scheduling policy 1 (priority 10); the restored tree is killed`,
    },
    {
      name: 'nice',
      what: 'a negative nice (-10)',
      argv: (a) => ['nice', '-n', '-10', 'setpriv', `--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', 'sleep', '1000'],
      reason: (pid) => `restored process ${pid} has nice -10; the restored tree is killed`,
    },
  ];
  for (const { name, what, argv, reason } of crafted) {
    it(`refuses to restore images whose process has ${what}`, async () => {
      const { pid, run } = await rootImages(`sec-img-${name}`, argv(attacker), 'sleep');
      const dir = attackerFolder(`run-img-${name}`);
      handImagesTo(attacker, run, dir, imageKeyPath());
      attack(`sec-img-${name}-resume.resume`, `${dir}\n`);
      const verdict = await daemon.verdict(`sec-img-${name}-resume`);
      expect(verdict.outcome, verdict.line).toBe('failed');
      expect(verdict.reason).toBe(reason(pid, attacker));
      await waitUntil(() => isGone(pid), 'the refused tree to be dead');
      expect(existsSync(join(dir, 'checkpoint', 'pidfile'))).toBe(false);
      report(`resume of images crafted with ${what}`, refused(verdict, 'the tree killed before running user code'));
    });
  }

  it("refuses to restore images that put the tree into another user's OAR job cgroup", async () => {
    const job = String(800_000 + (process.pid % 100_000));
    const cpuset = createJobCpuset(VICTIM, job);
    const { pid, run } = await rootImages('sec-img-cgroup', ['setpriv', `--reuid=${attacker.uid}`, `--regid=${attacker.gid}`, '--clear-groups', 'sleep', '1000'], 'sleep', (target) =>
      writeFileSync(join(cpuset, 'cgroup.procs'), `${target}\n`),
    );
    await waitUntil(() => cgroupProcs(cpuset).length === 0, 'the dumped process to leave the cpuset');
    const dir = attackerFolder('run-img-cgroup');
    handImagesTo(attacker, run, dir, imageKeyPath());
    attack('sec-img-cgroup-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-img-cgroup-resume');
    expect(verdict.outcome, verdict.line).toBe('failed');
    expect(verdict.reason).toBe(`restored process ${pid} is in the cgroup /oar/${VICTIM}_${job} (cpuset), not in a job of ${ATTACKER}; the restored tree is killed`);
    await waitUntil(() => isGone(pid), 'the refused tree to be dead');
    expect(cgroupProcs(cpuset)).toEqual([]);
    report("resume of images whose cgroups are another user's OAR job (its memory and CPUs)", refused(verdict, "the victim's job cgroup left empty"));
  });

  it("refuses a resume whose checkpoint folder holds other people's files, and gives none of them away", async () => {
    // A project folder everyone may write (not sticky), with a file and a folder of the victim's
    // and a root-only file an admin left there: the attacker may move them, not read or own them.
    shAsUser(victim, 'echo "the victim\'s notes" > "$1/victim-notes" && chmod 644 "$1/victim-notes" && mkdir -m 777 "$1/victim-folder"', box.shared);
    writeFileSync(join(box.shared, 'root-secret'), 'root only\n', { mode: 0o600 });
    const owners = (where: string): string[] =>
      ['victim-notes', 'victim-folder', 'root-secret'].map((name) => {
        const stats = lstatSync(join(where, name));
        return `${name} ${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)} ${stats.isFile() ? readFileSync(join(where, name), 'utf8') : 'folder'}`;
      });
    const before = owners(box.shared);
    const dir = attackerFolder('run-theft');
    shAsUser(attacker, 'mkdir "$1/checkpoint" && mv "$2/victim-notes" "$2/victim-folder" "$2/root-secret" "$1/checkpoint/"', dir, box.shared);
    attack('sec-theft.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-theft');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toMatch(new RegExp(`^checkpoint/(victim-notes|victim-folder|root-secret) is not a plain file of ${ATTACKER} `));
    expect(owners(join(dir, 'checkpoint'))).toEqual(before);
    expect(statSync(join(dir, 'checkpoint')).uid).toBe(attacker.uid);
    report("resume of a checkpoint folder holding another user's file and folder and a root-only file", refused(verdict, 'their owners and modes unchanged'));
  });

  it("refuses images the daemon did not make or that changed since (files.img forged to open root's file with O_TRUNC) before criu runs; its own images still resume", async () => {
    const dir = attackerFolder('run-forge');
    const held = join(dir, 'held-file');
    // Root's canary, at a path as long as the attacker's file: the forged files.img stays well-formed.
    const canaryPrefix = join(box.rootDir, 'canary-');
    const canary = canaryPrefix + 'x'.repeat(held.length - canaryPrefix.length);
    writeFileSync(canary, 'root data\n', { mode: 0o600 });
    const canary0 = fileState(canary);
    const { pid, child } = await userProcess(attacker, ['sh', '-c', 'exec 3>>"$1"; exec sleep 1000', 'sh', held], 'sleep');
    attack('sec-forge.checkpoint', `${pid}\n${dir}\n`);
    const dump = await daemon.verdict('sec-forge');
    expect(dump.outcome, dump.line).toBe('done');
    await exited(child); // reaped: its PID is free for the restore
    const images = join(dir, 'checkpoint');
    expect(readdirSync(images)).toContain('ckpt-daemon.sig');
    shAsUser(attacker, 'cp -p "$1/files.img" "$1/ckpt-daemon.sig" "$2/"', images, dir);
    // The attacker's forgery of their own images: root's canary instead of their file, and O_TRUNC
    // (0x200) added to its open flags (O_LARGEFILE|O_APPEND|O_WRONLY, varint 81 88 02 -> 81 8c 02).
    const forge = [
      "const fs = require('fs'); const [file, from, to] = process.argv.slice(1); const b = fs.readFileSync(file);",
      'const at = b.indexOf(from); if (at < 0) process.exit(3); b.write(to, at);',
      'const flags = b.lastIndexOf(Buffer.from([0x10, 0x81, 0x88, 0x02]), at); if (flags >= 0) b[flags + 2] = 0x8c;',
      "fs.writeFileSync(file, b); console.log(flags >= 0 ? 'O_TRUNC' : 'path only');",
    ].join(' ');
    const forged = asUser(attacker, [process.execPath, '-e', forge, join(images, 'files.img'), held, canary]).trim();
    attack('sec-forge-resume.resume', `${dir}\n`);
    const verdict = await daemon.verdict('sec-forge-resume');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(
      "images not made by this cluster's ckpt-daemon, or changed since: the signature in checkpoint/ckpt-daemon.sig does not match the images (a file was changed, added, removed or renamed, they were made for another user, or another key signed them)",
    );
    expect(await daemonReport(dir, 'restore_failed')).toBe(verdict.reason);
    expect(parseDaemonReport(readFileSync(join(dir, 'restore_failed'), 'utf8'))?.retryable).toBe(false);
    // criu never ran: root's file untouched, the tree not recreated.
    expect(fileState(canary)).toBe(canary0);
    expect(isGone(pid)).toBe(true);
    report(`resume of the user's own images with files.img forged (root's file, ${forged})`, refused(verdict, "criu never ran, root's file untouched"));

    // Images the daemon never signed: the legit files.img back, no signature.
    shAsUser(attacker, 'cp "$1/files.img" "$2/files.img" && rm "$2/ckpt-daemon.sig" "$1/restore_failed"', dir, images);
    attack('sec-unsigned-resume.resume', `${dir}\n`);
    const unsigned = await daemon.verdict('sec-unsigned-resume');
    expect(unsigned.outcome, unsigned.line).toBe('refused');
    expect(unsigned.reason).toBe("images not made by this cluster's ckpt-daemon, or changed since: no signature (checkpoint/ckpt-daemon.sig is missing)");
    expect(await daemonReport(dir, 'restore_failed')).toBe(unsigned.reason);
    expect(isGone(pid)).toBe(true);
    report('resume of images without the daemon\'s signature', refused(unsigned, 'criu never ran'));

    // The images as the daemon made them: resumed.
    shAsUser(attacker, 'cp "$1/ckpt-daemon.sig" "$2/" && rm "$1/restore_failed"', dir, images);
    attack('sec-legit-resume.resume', `${dir}\n`);
    const legit = await daemon.verdict('sec-legit-resume');
    expect(legit.outcome, legit.line).toBe('done');
    expect(Number(readFileSync(join(images, 'pidfile'), 'utf8'))).toBe(pid);
    expect(commOf(pid)).toBe('sleep');
    expect(fingerprint(pid).uid).toBe(`${attacker.uid}\t${attacker.uid}\t${attacker.uid}\t${attacker.uid}`);
    expect(fileState(canary)).toBe(canary0);
    report('resume of the same images as the daemon signed them', `done: "${legit.reason}"`);
  });
});
