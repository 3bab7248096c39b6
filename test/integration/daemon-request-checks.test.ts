/** The checks a request passes before the root daemon acts: real folders, real processes. */
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { moveIntoCgroups, removeCgroups } from '../../src/daemon/cgroup-moves.js';
import { dumpedJobCgroups, jobCgroups, oarJobUser } from '../../src/scheduler/oar/cgroups.js';
import { checkJobOwner, checkTargetProcess, openRunDir } from '../../src/daemon/request-checks.js';
import { childrenOf, processState } from '../../src/proc/processes.js';
import { AS_ROOT, asStranger, cleanUp, requesterOf, SELF, startTree, STRANGER, tempDir } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';

afterEach(cleanUp);

const STRANGER_REQUESTER = requesterOf(STRANGER, 'stranger');

describe('openRunDir', () => {
  it("pins the requester's own folder", () => {
    const dir = tempDir();
    const run = openRunDir(dir, SELF);
    expect(run.location()).toBe(dir);
    run.close();
  });

  it('refuses a folder reached through a symlink, at the end or on the way', () => {
    const base = tempDir();
    mkdirSync(join(base, 'real/run'), { recursive: true });
    symlinkSync(join(base, 'real'), join(base, 'link'));
    expect(() => openRunDir(join(base, 'link/run'), SELF)).toThrow(/through a symlink.*it is .*real\/run/);
    symlinkSync(join(base, 'real/run'), join(base, 'run-link'));
    expect(() => openRunDir(join(base, 'run-link'), SELF)).toThrow('through a symlink');
  });

  it('refuses indirect and missing paths', () => {
    const base = tempDir();
    mkdirSync(join(base, 'run'));
    expect(() => openRunDir(`${base}/run/../run`, SELF)).toThrow('indirect path');
    expect(() => openRunDir(`${base}/run/`, SELF)).toThrow('indirect path');
    expect(() => openRunDir(`${base}/missing`, SELF)).toThrow('cannot be resolved (ENOENT)');
  });

  it('refuses DIR/checkpoint when it is a symlink, e.g. to /etc', () => {
    const dir = tempDir();
    symlinkSync('/etc', join(dir, 'checkpoint'));
    expect(() => openRunDir(dir, SELF)).toThrow('checkpoint is not a directory (a symlink?)');
  });

  it.runIf(AS_ROOT)("refuses another user's folder", () => {
    const dir = tempDir();
    expect(() => openRunDir(dir, STRANGER_REQUESTER)).toThrow(`belongs to uid 0, not to stranger (uid ${STRANGER})`);
    chownSync(dir, STRANGER, STRANGER);
    openRunDir(dir, STRANGER_REQUESTER).close();
  });
});

describe('checkTargetProcess', () => {
  it('refuses PID 1, the daemon itself and a missing process', () => {
    expect(() => checkTargetProcess(1, SELF)).toThrow("PID 1 (the node's init) is never dumped");
    expect(() => checkTargetProcess(process.pid, SELF)).toThrow('is the daemon itself');
    expect(() => checkTargetProcess(999_999_999, SELF)).toThrow('no process 999999999');
  });

  it("refuses a tree that holds the daemon (the daemon's own session leader)", () => {
    expect(() => checkTargetProcess(process.ppid, SELF)).toThrow('contains the daemon itself');
  });

  it("accepts the requester's own tree", async () => {
    const pid = await startTree(['sh', '-c', 'sleep 100 & wait']);
    expect(() => checkTargetProcess(pid, SELF)).not.toThrow();
  });

  it.runIf(AS_ROOT)("refuses another user's process, and a tree with a member that has more powers", async () => {
    const rootTree = await startTree(['sleep', '100']);
    expect(() => checkTargetProcess(rootTree, STRANGER_REQUESTER)).toThrow(`process ${rootTree} (in the tree of PID ${rootTree}) runs as uid 0/0/0/0`);
    const own = await startTree(asStranger(['sh', '-c', 'sleep 100 & wait']));
    expect(() => checkTargetProcess(own, STRANGER_REQUESTER)).not.toThrow();
    const capable = await startTree(asStranger(['sleep', '100'], ['--inh-caps=+net_raw', '--ambient-caps=+net_raw']));
    expect(() => checkTargetProcess(capable, STRANGER_REQUESTER)).toThrow('has capabilities (CapPrm 0000000000002000)');
    const grouped = await startTree(['setpriv', `--reuid=${STRANGER}`, `--regid=${STRANGER}`, '--groups=0', 'sleep', '100']);
    expect(() => checkTargetProcess(grouped, STRANGER_REQUESTER)).toThrow('has group 0, which stranger is not in');
  });

  it.runIf(AS_ROOT)('accepts a tree whose threads come and go while it is checked (a thread that ended has no powers)', async () => {
    // Threads of 0.5 ms, 20 at a time: some end between the listing and the reading of their status.
    const pid = await startTree(asStranger(['/usr/bin/python3', '-c', 'import threading, time\nwhile True:\n  ts = [threading.Thread(target=time.sleep, args=(0.0005,)) for _ in range(20)]\n  [t.start() for t in ts]; [t.join() for t in ts]']));
    await waitUntil(() => statSync(`/proc/${pid}/status`).uid === STRANGER && readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('python'), 'python to run as the stranger');
    for (let i = 0; i < 300; i++) expect(() => checkTargetProcess(pid, STRANGER_REQUESTER)).not.toThrow();
  });

  it.runIf(AS_ROOT)("accepts a user's tree holding a zombie (whose /proc files the kernel gives to root)", async () => {
    const pid = await startTree(asStranger(['sh', '-c', 'sh -c "exit 0" & exec sleep 100']));
    const zombie = () => childrenOf(pid).find((child) => processState(child) === 'Z');
    await waitUntil(() => zombie() !== undefined, 'the unreaped child');
    expect(statSync(`/proc/${zombie()}/status`).uid).toBe(0);
    expect(() => checkTargetProcess(pid, STRANGER_REQUESTER)).not.toThrow();
  });

  it.runIf(AS_ROOT)('refuses a process that is not dumpable (as after running a setuid program)', async () => {
    // prctl(PR_SET_DUMPABLE, 0), syscall 157 on x86_64: what the kernel does on a setuid exec.
    const pid = await startTree(asStranger(['perl', '-e', 'syscall(157, 4, 0, 0, 0, 0); sleep 100']));
    // The kernel gives a non-dumpable process's /proc files to root.
    await waitUntil(() => statSync(`/proc/${pid}/status`).uid === 0, 'perl to call prctl');
    expect(() => checkTargetProcess(pid, STRANGER_REQUESTER)).toThrow('is not dumpable');
  });
});

describe("OAR's job cgroups", () => {
  function fakeCgroups(): string {
    const root = tempDir();
    for (const controller of ['cpuset', 'cpu', 'freezer']) mkdirSync(join(root, controller, 'oar', 'alice_77'), { recursive: true });
    mkdirSync(join(root, 'cpuset', 'oar', 'bob_177'));
    return root;
  }

  it('name the user that runs a job id on this node', () => {
    const root = fakeCgroups();
    expect(oarJobUser('77', root)).toBe('alice');
    expect(oarJobUser('177', root)).toBe('bob');
    expect(oarJobUser('7', root)).toBeUndefined();
  });

  it("refuse a request naming another user's job; allow unknown jobs and root", () => {
    const root = fakeCgroups();
    expect(() => checkJobOwner('77', requesterOf(1500, 'bob'), root)).toThrow('OAR runs job 77 for alice, but the request comes from bob');
    expect(() => checkJobOwner('77', requesterOf(1501, 'alice'), root)).not.toThrow();
    expect(() => checkJobOwner('78', requesterOf(1500, 'bob'), root)).not.toThrow();
    expect(() => checkJobOwner('77', requesterOf(0, 'root'), root)).not.toThrow();
  });

  it("list the job's cgroup under every controller and take the restored PIDs", () => {
    const root = fakeCgroups();
    const cgroups = jobCgroups('alice', '77', root);
    expect(cgroups.sort()).toEqual(['cpu', 'cpuset', 'freezer'].map((controller) => join(root, controller, 'oar', 'alice_77')));
    expect(moveIntoCgroups([4321], cgroups)).toEqual([]);
    for (const cgroup of cgroups) expect(readFileSync(join(cgroup, 'cgroup.procs'), 'utf8')).toBe('4321\n');
    expect(moveIntoCgroups([4321], [join(root, 'missing')])[0]).toMatch(/cannot move PID 4321 into .*missing: ENOENT/);
  });

  it("find the dumped job's cgroups that criu recreated, and remove them", () => {
    const root = fakeCgroups();
    mkdirSync(join(root, 'cpu', 'oar', 'alice_70'), { recursive: true });
    mkdirSync(join(root, 'cpuset', 'oar', 'alice_70'));
    const procCgroup = ['4:cpuset:/oar/alice_70', '3:cpu,cpuacct:/oar/alice_70', '2:freezer:/oar/alice_77', '1:name=systemd:/', ''].join('\n');
    const dumped = dumpedJobCgroups(procCgroup, 'alice', '77', root);
    expect(dumped).toEqual([join(root, 'cpuset/oar/alice_70'), join(root, 'cpu/oar/alice_70')]);
    expect(dumpedJobCgroups('4:cpuset:/oar/bob_70\n5:cpu:/oar/alice_70/sub', 'alice', '77', root)).toEqual([]);
    expect(removeCgroups(dumped)).toEqual([]);
    expect(dumped.some((dir) => existsSync(dir))).toBe(false);
  });
});
