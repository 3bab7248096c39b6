/** The adversarial suite (test/helpers/security-suite.ts): attacks on jobs. */
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { waitUntil } from '../helpers/poll.js';
import { stopRootHelper } from '../helpers/security-attacks.js';
import { cgroupProcs, commOf, createJobCpuset, fingerprint, requestAs, snapshot, userFolder, userProcess } from '../helpers/security-fixtures.js';
import {
  adversarialSuite, attack, ATTACKER, attacker, attackerFolder, box, daemon, daemonReport, oldCheckpoint, ownProcess, refused, report, VICTIM, victim,
} from '../helpers/security-suite.js';
import { asUser, processesOf, shAsUser } from '../helpers/security-users.js';

adversarialSuite('jobs', () => {
  it("refuses a request naming another user's OAR job id", async () => {
    const job = String(810_000 + (process.pid % 100_000));
    const cpuset = createJobCpuset(VICTIM, job);
    const cpuset0 = snapshot(cpuset);
    const dir = attackerFolder('run-oar');
    const own = await ownProcess();
    const own0 = fingerprint(own);
    attack(`${job}.checkpoint`, `${own}\n${dir}\n`);
    const dump = await daemon.verdict(job, { kind: 'dump' });
    attack(`${job}.resume`, `${dir}\n`);
    const restore = await daemon.verdict(job, { kind: 'restore' });
    for (const verdict of [dump, restore]) {
      expect(verdict.outcome, verdict.line).toBe('refused');
      expect(verdict.reason).toBe(`OAR runs job ${job} for ${VICTIM}, but the request comes from ${ATTACKER}`);
    }
    expect(snapshot(cpuset)).toEqual(cpuset0);
    expect(cgroupProcs(cpuset)).toEqual([]);
    expect(fingerprint(own)).toEqual(own0);
    report("checkpoint request naming another user's OAR job id", refused(dump, "the victim's job cpuset untouched"));
    report("resume request naming another user's OAR job id", refused(restore, "the victim's job cpuset untouched"));
  });

  it("refuses a job id that makes OAR's cpuset names ambiguous (<attacker>_<v_JOB> = <victim>_<JOB>)", async () => {
    const job = String(820_000 + (process.pid % 100_000));
    const cpuset = createJobCpuset(VICTIM, job);
    const dir = attackerFolder('run-ambiguous');
    const own = await ownProcess();
    attack('sec-ambiguous.checkpoint', `${own}\n${dir}\n`);
    const dump = await daemon.verdict('sec-ambiguous');
    expect(dump.outcome, dump.line).toBe('done');
    const ambiguous = `${VICTIM.slice(ATTACKER.length + 1)}_${job}`;
    attack(`${ambiguous}.resume`, `${dir}\n`);
    const verdict = await daemon.verdict(ambiguous);
    expect(verdict.outcome, verdict.line).toBe('refused');
    expect(verdict.reason).toBe(`job id ${ambiguous} has a "_": OAR's cpuset ${VICTIM}_${job} may be another user's job`);
    expect(cgroupProcs(cpuset)).toEqual([]);
    expect(await daemonReport(dir, 'restore_failed')).toBe(verdict.reason);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint', 'checkpoint_ok', 'checkpoint_stats', 'restore_failed']);
    report(`resume under job id "${ambiguous}" (${ATTACKER} + "_${ambiguous}" names ${VICTIM}'s job ${job} cpuset)`, refused(verdict, "the victim's job cpuset untouched"));
  });

  it("keeps a restored tree that forks the moment it resumes inside the new job's cgroups", async () => {
    const [oldJob, newJob] = [830_000, 840_000].map((base) => String(base + (process.pid % 100_000)));
    const dir = attackerFolder('run-escape');
    const flag = join(dir, 'resumed');
    // Once restored (the flag exists), the program detaches a process at once: the moment it
    // resumes, before the daemon could move the tree, the detached one would stay behind.
    const program = (await userProcess(attacker, ['sh', '-c', 'while [ ! -e "$1" ]; do :; done; setsid -f sleep 1001; exec sleep 1000', 'sh', flag], 'sh')).pid;
    const oldCpuset = createJobCpuset(ATTACKER, oldJob);
    writeFileSync(join(oldCpuset, 'cgroup.procs'), `${program}\n`); // as OAR starts a job
    attack(`${oldJob}.checkpoint`, `${program}\n${dir}\n`);
    const dump = await daemon.verdict(oldJob);
    expect(dump.outcome, dump.line).toBe('done');
    await waitUntil(() => cgroupProcs(oldCpuset).length === 0, 'the dumped job to be empty');
    rmdirSync(oldCpuset); // the job ended: OAR removes its cgroups
    const newCpuset = createJobCpuset(ATTACKER, newJob);
    shAsUser(attacker, 'touch "$1"', flag);
    attack(`${newJob}.resume`, `${dir}\n`);
    const restore = await daemon.verdict(newJob);
    expect(restore.outcome, restore.line).toBe('done');
    const detached = (): number | undefined =>
      processesOf(attacker.uid).find((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x001001\x00';
        } catch {
          return false;
        }
      });
    await waitUntil(() => detached() !== undefined && commOf(program) === 'sleep' && cgroupProcs(newCpuset).length === 2, 'the detached process, and the root running sleep');
    const cpusetOf = (pid: number): string => /^\d+:cpuset:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '';
    expect([program, detached() as number].map(cpusetOf)).toEqual([`/oar/${ATTACKER}_${newJob}`, `/oar/${ATTACKER}_${newJob}`]);
    expect(cgroupProcs(newCpuset).sort()).toEqual([program, detached() as number].sort());
    expect(existsSync(oldCpuset), "the dumped job's cpuset, which criu recreated, is removed").toBe(false);
    report('restored tree that detaches a process the moment it resumes (to outlive its OAR job)', "contained: moved into the new job's cpuset before it ran, the dumped job's recreated cpuset removed");
  });

  it("serves another user's request for the same job id while the attacker holds theirs", async () => {
    const dir = attackerFolder('run-same-job');
    oldCheckpoint(dir);
    const own = await ownProcess();
    const stopped = stopRootHelper(attacker, daemon.pid);
    attack('sec-same-job.checkpoint', `${own}\n${dir}\n`);
    const helper = await stopped;
    await waitUntil(() => !existsSync(join(box.spool, 'sec-same-job.checkpoint')), "the daemon to take the attacker's request");
    const victimDir = userFolder(victim, join(box.home(victim), 'run-same-job'));
    const victimProcess = (await userProcess(victim, ['sleep', '1000'], 'sleep')).pid;
    const asked = Date.now();
    requestAs(victim, box.spool, 'sec-same-job.checkpoint', `${victimProcess}\n${victimDir}\n`);
    const verdict = await daemon.verdict('sec-same-job', { match: `PID ${victimProcess} `, timeoutMs: 20_000 });
    const servedIn = (Date.now() - asked) / 1000;
    expect(verdict.outcome, verdict.line).toBe('done');
    expect(fingerprint(helper).stopped).toBe('true'); // the attacker's request still waits
    asUser(attacker, ['kill', '-CONT', String(helper)]);
    const own1 = await daemon.verdict('sec-same-job', { match: `PID ${own} ` });
    expect(own1.outcome, own1.line).toBe('done');
    report("a victim's request under the job id of a request the attacker holds up (its rm SIGSTOPped)", `not held up: served in ${servedIn.toFixed(1)} s while the attacker's request waited`);
  });
});
