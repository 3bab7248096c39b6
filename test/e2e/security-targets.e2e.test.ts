/** The adversarial suite (test/helpers/security-suite.ts): attacks on the target process. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { waitUntil } from '../helpers/poll.js';
import { stopRootHelper } from '../helpers/security-attacks.js';
import { fingerprint, snapshot, userProcess } from '../helpers/security-fixtures.js';
import {
  adversarialSuite, attack, ATTACKER, attacker, attackerFolder, box, daemon, daemonReport, oldCheckpoint, refused, report, victim, victimJob, victimRun,
} from '../helpers/security-suite.js';
import { asUser, shAsUser } from '../helpers/security-users.js';

adversarialSuite('the target process', () => {
  it("refuses a checkpoint of another user's process", async () => {
    const dir = attackerFolder('run-victim-pid');
    const [process0, folder0] = [fingerprint(victimJob), snapshot(victimRun)];
    attack('sec-victim-pid.checkpoint', `${victimJob}\n${dir}\n`);
    const verdict = await daemon.verdict('sec-victim-pid');
    const v = victim.uid;
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`process ${victimJob} (in the tree of PID ${victimJob}) runs as uid ${v}/${v}/${v}/${v}, unlike ${ATTACKER}'s own processes`);
    expect(fingerprint(victimJob)).toEqual(process0);
    expect(snapshot(victimRun)).toEqual(folder0);
    expect(await daemonReport(dir, 'dump_failed')).toBe(verdict.reason);
    expect(readdirSync(dir)).toEqual(['dump_failed']);
    report("checkpoint of another user's PID", refused(verdict));
  });

  it('refuses a checkpoint of PID 1', async () => {
    const dir = attackerFolder('run-pid1');
    const init0 = fingerprint(1);
    attack('sec-pid1.checkpoint', `1\n${dir}\n`);
    const verdict = await daemon.verdict('sec-pid1');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe("PID 1 (the node's init) is never dumped");
    expect(fingerprint(1)).toEqual(init0);
    report('checkpoint of PID 1', refused(verdict, 'init untouched'));
  });

  it('refuses a checkpoint of the daemon itself', async () => {
    const dir = attackerFolder('run-daemon');
    const daemon0 = fingerprint(daemon.pid);
    attack('sec-daemon.checkpoint', `${daemon.pid}\n${dir}\n`);
    const verdict = await daemon.verdict('sec-daemon');
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`PID ${daemon.pid} is the daemon itself`);
    expect(fingerprint(daemon.pid)).toEqual(daemon0);
    report('checkpoint of the daemon itself', refused(verdict, 'daemon untouched'));
  });

  it('refuses a checkpoint of a process that became root between the checks and the dump (exec of a setuid program)', async () => {
    const dir = attackerFolder('run-setuid');
    oldCheckpoint(dir);
    shAsUser(attacker, 'mkfifo "$1/go"', dir);
    // The attacker's own process, which runs a setuid-root program (as passwd or su would) on a signal.
    const target = (await userProcess(attacker, ['sh', '-c', 'read x < "$1"; exec "$2" 1000', 'sh', join(dir, 'go'), box.suidSleep], 'sh')).pid;
    // The daemon removes checkpoint.old with an rm running as the attacker, after its checks: the
    // attacker stops that rm, turns the checked process into a root one, and lets the rm go on.
    const stopped = stopRootHelper(attacker, daemon.pid);
    attack('sec-setuid.checkpoint', `${target}\n${dir}\n`);
    const helper = await stopped;
    shAsUser(attacker, 'echo go > "$1"', join(dir, 'go'));
    await waitUntil(() => /^Uid:\s+\d+\s+0\s+0\s+0$/m.test(readFileSync(`/proc/${target}/status`, 'utf8')), 'the target to run the setuid program');
    asUser(attacker, ['kill', '-CONT', String(helper)]);
    const verdict = await daemon.verdict('sec-setuid');
    const a = attacker.uid;
    expect(verdict.outcome, verdict.line).toBe('failed');
    expect(verdict.reason).toBe(`dumped process ${target} runs as uid ${a} 0 0 0, not as uid ${a}; the dump is discarded`);
    // No image of the root process reached the attacker; it runs on, resumed by criu.
    expect(await daemonReport(dir, 'dump_failed')).toBe(verdict.reason);
    expect(readdirSync(dir).sort()).toEqual(['dump_failed', 'go']);
    expect(fingerprint(target)).toMatchObject({ stopped: 'false', uid: `${a}\t0\t0\t0` });
    report('checkpoint of own process that execs a setuid-root program after the checks (window held open by SIGSTOPping the daemon\'s rm)', refused(verdict, 'no image of the root process handed over'));
  });
});
