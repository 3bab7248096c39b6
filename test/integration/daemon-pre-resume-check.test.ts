/**
 * scripts/criu-pre-resume-check.sh, run as criu runs it (CRTOOLS_SCRIPT_ACTION=pre-resume,
 * CRTOOLS_INIT_PID), on live trees that stand for restored ones: it must clear a user's
 * ordinary tree and kill any tree with more powers than the requester. Root only: the
 * trees run as a stranger uid through setpriv.
 */
import { execa } from 'execa';
import { chmodSync, closeSync, linkSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processState, treeOf } from '../../src/proc/processes.js';
import { PRE_RESUME_CHECK } from '../../src/engine/criu/criu.js';
import { AS_ROOT, asStranger, cleanUp, isGone, startTree, STRANGER } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';

afterEach(cleanUp);

async function check(pid: number, uid = STRANGER, gids = String(STRANGER)) {
  const env = { CRTOOLS_SCRIPT_ACTION: 'pre-resume', CRTOOLS_INIT_PID: String(pid), CKPT_REQUESTER_UID: String(uid), CKPT_REQUESTER_GIDS: gids };
  return execa(PRE_RESUME_CHECK, [], { env, reject: false });
}

async function expectKilled(pid: number, refusal: string | RegExp) {
  const result = await check(pid);
  expect(result.exitCode).toBe(1);
  expect(result.stderr).toMatch(refusal);
  expect(result.stderr).toMatch(/^Error \(ckpt-daemon pre-resume check\): restored process \d+ .*; the restored tree is killed$/);
  await waitUntil(() => isGone(pid), `the tree of PID ${pid} to be killed`);
}

describe.runIf(AS_ROOT)('the pre-resume check', () => {
  it("clears a user's ordinary tree (a shell, a pipe, a Node program) and lets it live", async () => {
    const pid = await startTree(asStranger(['sh', '-c', `sleep 100 | cat & ${process.execPath} -e "setInterval(() => {}, 1000)" & wait`]), { cwd: '/tmp' });
    await waitUntil(() => treeOf(pid).length === 4, 'sh, sleep, cat and node');
    const result = await check(pid);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(isGone(pid)).toBe(false);
  });

  it('clears a process with no file descriptor at all', async () => {
    const pid = await startTree(asStranger(['perl', '-e', 'use POSIX; POSIX::close($_) for 0..1023; sleep 100']), { cwd: '/tmp' });
    await waitUntil(() => readdirSync(`/proc/${pid}/fd`).length === 0, 'perl to close its descriptors');
    const result = await check(pid);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
  });

  it("clears a working directory in the /proc folder of a process that has ended (zdtm's unhashed_proc: root's, with links, its name deleted)", async () => {
    const pid = await startTree(asStranger(['sh', '-c', 'sleep 100 & cd /proc/$! && kill $! && wait; exec sleep 100']), { cwd: '/tmp' });
    await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n', 'sh to exec sleep in the dead folder');
    expect(readlinkSync(`/proc/${pid}/cwd`)).toMatch(/^\/proc\/\d+ \(deleted\)$/);
    const result = await check(pid);
    expect([result.exitCode, result.stderr]).toEqual([0, '']);
    expect(isGone(pid)).toBe(false);
  });

  it("kills a tree holding a deleted name of another's file that keeps another name (root's file, readable by all)", async () => {
    const dir = mkdtempSync('/tmp/ckpt-pre-resume-');
    try {
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'a'), 'root\n', { mode: 0o644 });
      linkSync(join(dir, 'a'), join(dir, 'b'));
      const pid = await startTree(asStranger(['sh', '-c', `exec 3<${join(dir, 'a')}; exec sleep 100`]));
      await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n', 'sh to open the file and exec sleep');
      unlinkSync(join(dir, 'a'));
      await expectKilled(pid, `has file descriptor 3 on a deleted name of a file that still has other names and is not 's (${join(dir, 'a')} (deleted))`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does nothing for another action, and clears anything for root', async () => {
    const pid = await startTree(['sleep', '100']);
    expect((await execa(PRE_RESUME_CHECK, [], { env: { CRTOOLS_SCRIPT_ACTION: 'post-restore' } })).exitCode).toBe(0);
    expect((await check(pid, 0, '0')).exitCode).toBe(0);
    expect(isGone(pid)).toBe(false);
  });

  it('kills a tree that runs as another uid (an image whose credentials say uid 0)', async () => {
    await expectKilled(await startTree(['sleep', '100']), /runs as uid 0 0 0 0, not as uid 4242/);
  });

  it('kills a tree with a capability, or with a group the requester is not in', async () => {
    await expectKilled(await startTree(asStranger(['sleep', '100'], ['--inh-caps=+net_raw', '--ambient-caps=+net_raw'])), 'has capabilities (CapInh: 0000000000002000)');
    await expectKilled(await startTree(['setpriv', `--reuid=${STRANGER}`, `--regid=${STRANGER}`, '--groups=0', 'sleep', '100']), 'has group 0, which uid 4242 is not in');
  });

  it('kills a tree holding a file the requester may not read (opened by root: /etc/shadow)', async () => {
    const shadow = openSync('/etc/shadow', 'r');
    try {
      await expectKilled(await startTree(asStranger(['sleep', '100']), { extraFd: shadow }), 'has file descriptor 3 on /etc/shadow, which uid 4242 may not use that way');
    } finally {
      closeSync(shadow);
    }
  });

  it('kills a tree whose working directory is behind a folder the requester may not search (/root)', async () => {
    await expectKilled(await startTree(asStranger(['sleep', '100']), { cwd: '/root' }), 'has its working directory on /root');
  });

  it('after a dump ("post-dump"), refuses a tree that is not the requester\'s without killing it: criu resumes it', async () => {
    const pid = await startTree(['sleep', '100']);
    const env = { CRTOOLS_SCRIPT_ACTION: 'post-dump', CRTOOLS_INIT_PID: String(pid), CKPT_REQUESTER_UID: String(STRANGER), CKPT_REQUESTER_GIDS: String(STRANGER) };
    const refused = await execa(PRE_RESUME_CHECK, [], { env, reject: false });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe(`Error (ckpt-daemon post-dump check): dumped process ${pid} runs as uid 0 0 0 0, not as uid ${STRANGER}; the dump is discarded`);
    expect(isGone(pid)).toBe(false);
    const own = await startTree(asStranger(['sleep', '100']));
    const cleared = await execa(PRE_RESUME_CHECK, [], { env: { ...env, CRTOOLS_INIT_PID: String(own) }, reject: false });
    expect([cleared.exitCode, cleared.stderr]).toEqual([0, '']);
  });

  it('clears a zombie in the tree, after a dump and before a resume (a shell loop frozen before it reaped a child)', async () => {
    // `true &` exits at once; sh then execs sleep, which never reaps it: a zombie child, whose
    // /proc the kernel shows as root's.
    const pid = await startTree(asStranger(['sh', '-c', 'true & exec sleep 100']));
    await waitUntil(() => treeOf(pid).slice(1).some((child) => processState(child) === 'Z'), 'a zombie child');
    for (const action of ['post-dump', 'pre-resume']) {
      const env = { CRTOOLS_SCRIPT_ACTION: action, CRTOOLS_INIT_PID: String(pid), CKPT_REQUESTER_UID: String(STRANGER), CKPT_REQUESTER_GIDS: String(STRANGER) };
      const result = await execa(PRE_RESUME_CHECK, [], { env, reject: false });
      expect([action, result.exitCode, result.stderr]).toEqual([action, 0, '']);
    }
    expect(isGone(pid)).toBe(false);
  });

  it('kills a tree with a namespace of its own and no capability (UTS), or a privileged scheduling (nice -5)', async () => {
    await expectKilled(await startTree(['unshare', '--uts', ...asStranger(['sleep', '100'])]), 'has a uts namespace of its own');
    await expectKilled(await startTree(['nice', '-n', '-5', ...asStranger(['sleep', '100'])]), 'has nice -5');
  });

  it('kills a tree in a namespace of its own (a user namespace with full capabilities)', async () => {
    await expectKilled(await startTree(asStranger(['unshare', '--user', '--map-root-user', 'sleep', '100'])), /has capabilities|namespace of its own/);
  });
});
