/**
 * What the root daemon runs as a requester (src/proc/as-user.ts): the rm of the previous
 * checkpoint, the statfs asked as the user, the restart engine's program. The requester may
 * SIGSTOP any of their own processes, at any moment: the daemon's event loop must run on while
 * they hold one stopped. With child_process's uid/gid options it did not, when the stop landed
 * after the child took the user's uid and before its execve (libuv's spawn blocks until that
 * execve): the adversarial suite lost that race under load, the whole daemon frozen.
 *
 * Here a root "attacker" (a separate process: the test's own loop may be the one that hangs)
 * stops the first child of this process that runs with the requester's uid, holds it
 * stopped, and resumes it; a long PATH of missing folders before the real ones makes the child's
 * walk to its program (execvp) long, so that the stop lands in that window nearly every time,
 * not under load only.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serveCheckpoint } from '../../src/daemon/checkpoint-service.js';
import { checkDumpRoom } from '../../src/daemon/dump-room.js';
import { PinnedDir } from '../../src/daemon/pinned-dir.js';
import type { CheckpointEngine } from '../../src/engine/engine.js';
import { RestartEngine } from '../../src/engine/restart/restart.js';
import { AS_ROOT, cleanUp, killAtCleanUp, requesterOf, startTree, STRANGER, tempDir } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';

afterEach(cleanUp);

const REQUESTER = requesterOf(STRANGER, 'stranger');
const HOLD_MS = 1500;

/** Missing folders first: the child's execvp tries each one before it finds its program. */
const LONG_PATH = [...Array.from({ length: 3000 }, (_, i) => `/nonexistent-${i}`), '/usr/local/bin', '/usr/bin', '/bin'].join(':');

const STOPPER = `
const fs = require('fs');
const [parent, uid, holdMs] = process.argv.slice(1).map(Number);
const deadline = Date.now() + 20000;
const uidOf = (pid) => {
  try { return Number(/^Uid:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/' + pid + '/status', 'utf8'))[1]); } catch { return -1; }
};
console.log('ready');
for (;;) {
  const children = [];
  try {
    for (const task of fs.readdirSync('/proc/' + parent + '/task')) {
      children.push(...fs.readFileSync('/proc/' + parent + '/task/' + task + '/children', 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {}
  const mine = children.find((pid) => uidOf(pid) === uid);
  if (mine) {
    process.kill(mine, 'SIGSTOP');
    const stoppedAt = Date.now();
    let comm = '';
    try { comm = fs.readFileSync('/proc/' + mine + '/comm', 'utf8').trim(); } catch {}
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, holdMs);
    const continuedAt = Date.now();
    process.kill(mine, 'SIGCONT');
    console.log(JSON.stringify({ pid: mine, comm, stoppedAt, continuedAt }));
    break;
  }
  if (Date.now() > deadline) { console.error('no child of ' + parent + ' ran as uid ' + uid); process.exit(1); }
}
`;

interface Stop {
  pid: number;
  /** The stopped process's command name when it was stopped. */
  comm: string;
  stoppedAt: number;
  continuedAt: number;
}

/** Starts the attacker on this process; resolves once it watches, to the stop it will make. */
async function startAttacker(): Promise<{ stop: Promise<Stop> }> {
  const child = spawn(process.execPath, ['-e', STOPPER, String(process.pid), String(STRANGER), String(HOLD_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stop = new Promise<Stop>((resolve, reject) => {
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(stdout.split('\n')[1]) as Stop) : reject(new Error(`the attacker failed (${code}): ${stderr}`))));
  });
  await waitUntil(() => stdout.startsWith('ready\n') || child.exitCode !== null, 'the attacker to watch');
  return { stop };
}

/**
 * Runs ACT (which starts a process as the requester) with the attacker on: the requester's process
 * was stopped, and this process's event loop ran while it was.
 */
async function expectLoopRunsWhileStopped(act: () => Promise<unknown>): Promise<Stop> {
  const { stop } = await startAttacker();
  const ticks: number[] = [];
  const ticker = setInterval(() => ticks.push(Date.now()), 20);
  try {
    await act();
    const stopped = await stop;
    expect(
      ticks.filter((tick) => tick > stopped.stoppedAt && tick < stopped.continuedAt).length,
      `no turn of the event loop in the ${HOLD_MS} ms the requester held ${stopped.comm} (PID ${stopped.pid}) stopped`,
    ).toBeGreaterThan(0);
    // A fork of this process, stopped before its exec: its name would still be this process's.
    expect(stopped.comm, 'the stopped process still ran our code').not.toBe(readFileSync('/proc/self/comm', 'utf8').trim());
    return stopped;
  } finally {
    clearInterval(ticker);
  }
}

/** Runs FN with the daemon's own PATH set to LONG_PATH (the rm and the stat find their program through it). */
async function withLongPath<T>(fn: () => Promise<T>): Promise<T> {
  const path = process.env.PATH;
  process.env.PATH = LONG_PATH;
  try {
    return await fn();
  } finally {
    process.env.PATH = path;
  }
}

/** A run folder of the requester's, held open as the daemon holds it. */
function strangersRun(): { dir: string; run: PinnedDir } {
  const dir = tempDir();
  chownSync(dir, STRANGER, STRANGER);
  const run = PinnedDir.open(dir);
  return { dir, run };
}

describe.runIf(AS_ROOT)('the root daemon runs commands as the requester without waiting on them', () => {
  it("removes the previous checkpoint with the requester's rm, which the requester may stop", async () => {
    const { dir, run } = strangersRun();
    mkdirSync(join(dir, 'checkpoint.old'));
    writeFileSync(join(dir, 'checkpoint.old', 'pages-1.img'), '');
    for (const path of ['checkpoint.old', 'checkpoint.old/pages-1.img']) chownSync(join(dir, path), STRANGER, STRANGER);
    const engine: CheckpointEngine = { name: 'fake', keepsNoMemory: true, dump: async () => ({}), restore: () => Promise.reject(new Error('no restore')) };
    try {
      await expectLoopRunsWhileStopped(() => withLongPath(() => serveCheckpoint(engine, run, process.pid, REQUESTER, Buffer.alloc(32))));
    } finally {
      run.close();
    }
    expect(existsSync(join(dir, 'checkpoint', 'pages-1.img'))).toBe(false); // the old images went, the new ones are in
    expect(existsSync(join(dir, 'checkpoint.old'))).toBe(false);
    expect(existsSync(join(dir, 'checkpoint_ok'))).toBe(true);
  });

  it("asks the run folder's free space with the requester's stat, which the requester may stop", async () => {
    const { run } = strangersRun();
    const sleeper = await startTree(['sleep', '100']);
    try {
      await expectLoopRunsWhileStopped(() => withLongPath(() => checkDumpRoom(run, sleeper, REQUESTER)));
    } finally {
      run.close();
    }
  });

  it("starts the restart engine's program as the requester, through root's own setpriv whatever the program's PATH", async () => {
    const images = tempDir();
    // A setpriv of the user's own, first in the restored program's PATH: root must never run it.
    const planted = join(tempDir(), 'bin');
    mkdirSync(planted);
    const marker = join(images, 'planted-setpriv-ran');
    writeFileSync(join(planted, 'setpriv'), `#!/bin/sh\ntouch ${marker}\nexec /usr/bin/setpriv "$@"\n`);
    chmodSync(planted, 0o755);
    chmodSync(join(planted, 'setpriv'), 0o755);
    writeFileSync(join(images, 'cmdline'), 'sleep\x00100\x00');
    writeFileSync(join(images, 'environ'), `PATH=${planted}:${LONG_PATH}\x00`);
    writeFileSync(join(images, 'cwd'), '/');
    let pid = 0;
    await expectLoopRunsWhileStopped(async () => {
      pid = (await new RestartEngine().restore({ imagesDir: images, scratchDir: tempDir(), requester: REQUESTER })).pid;
      killAtCleanUp(pid);
    });
    await waitUntil(() => readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n', 'the program to run');
    expect(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.slice(1)).toEqual([String(STRANGER), String(STRANGER), String(STRANGER)]);
    expect(existsSync(marker)).toBe(false);
  });
});
