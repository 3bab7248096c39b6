/**
 * CriuEngine.restore's answer to "Can't fork for N: File exists" (and to a thread ID taken), with a stand-in for criu (a
 * shell script that fails the way criu 4.1.1 does while PID N is taken): it waits for N to
 * leave /proc and tries again, and its deadline bounds the tries even when criu names a PID
 * that /proc never shows (seen in a nested PID namespace whose init never reaps).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CriuEngine } from '../../src/engine/criu/criu.js';
import { EngineError } from '../../src/engine/engine.js';
import { cleanUp, isGone, SELF, tempDir } from '../helpers/daemon-fixtures.js';
import { waitUntil } from '../helpers/poll.js';

/**
 * A criu that fails with ERROR_LINE in its log while /proc/HELD exists (or always, HELD
 * undefined), else restores: writes --pidfile and exits 0. Counts its runs.
 */
function standInCriu(dir: string, held: number | undefined, errorLine: string, restoredPid: number): { path: string; runs: () => number } {
  const path = join(dir, 'criu');
  const runsFile = join(dir, 'runs');
  writeFileSync(runsFile, '');
  writeFileSync(
    path,
    `#!/bin/sh
echo run >> '${runsFile}'
while [ $# -gt 0 ]; do
  case $1 in -W) work=$2 ;; --pidfile) pidfile=$2 ;; esac
  shift
done
if ${held === undefined ? 'true' : `[ -e /proc/${held} ]`}; then
  echo "${errorLine}" > "$work/restore.log"
  exit 1
fi
echo ${restoredPid} > "$pidfile"
`,
  );
  chmodSync(path, 0o755);
  return { path, runs: () => readFileSync(runsFile, 'utf8').split('\n').filter(Boolean).length };
}

/** criu 4.1.1's word for a PID of the tree taken, BUSY_PID held by HELD (or always). */
const pidTakenCriu = (dir: string, busyPid: number, restoredPid: number, alwaysBusy = false) =>
  standInCriu(dir, alwaysBusy ? undefined : busyPid, `(00.035731) Error (criu/cr-restore.c:1230): Can't fork for ${busyPid}: File exists`, restoredPid);

/**
 * criu 4.2.1's word for a thread ID of the tree taken (no ID named) while HELD exists; the
 * images hold a core-TID.img per thread, HELD among them.
 */
function threadIdCriu(dir: string, held: number, restoredPid: number): { path: string; runs: () => number } {
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  for (const tid of [restoredPid, held]) writeFileSync(join(images, `core-${tid}.img`), '');
  return standInCriu(dir, held, `(00.079963) pie: ${restoredPid}: Error (criu/pie/restorer.c:2185): Unable to create a thread: -17`, restoredPid);
}

function restoreWith(criu: string, pidWaitMs: number, scratchDir: string): Promise<number> {
  return new CriuEngine(criu, { pidWaitMs }).restore({ imagesDir: join(scratchDir, 'images'), scratchDir, requester: SELF }).then((tree) => tree.pid);
}

describe('CriuEngine.restore with a PID or a thread ID taken', () => {
  afterEach(cleanUp);

  it.each([
    ['the PID', pidTakenCriu],
    ['the thread IDs of the images', threadIdCriu],
  ])('waits for %s to leave /proc, then restores', async (_taken, criuFor) => {
    const dir = tempDir();
    const holder = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const holderGone = new Promise((resolve) => holder.once('exit', resolve));
    const criu = criuFor(dir, holder.pid as number, 4321);
    const restored = restoreWith(criu.path, 10_000, dir);
    setTimeout(() => holder.kill('SIGKILL'), 300);
    await expect(restored).resolves.toBe(4321);
    await holderGone;
    expect(criu.runs()).toBeGreaterThanOrEqual(2);
  });

  it('gives up at the deadline, tries included, when criu names a PID that /proc does not show', async () => {
    const dir = tempDir();
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    const criu = pidTakenCriu(dir, pidMax + 1, 4321, true); // no process can hold it: criu's word only
    const started = Date.now();
    const failure = await restoreWith(criu.path, 500, dir).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EngineError);
    expect((failure as EngineError).reason).toBe(`Can't fork for ${pidMax + 1}: File exists`);
    expect((failure as EngineError).retryable).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    // One try per pause of 50 ms at most, not a loop of criu runs for as long as criu says so.
    expect(criu.runs()).toBeLessThanOrEqual(12);
  });

  it('at the deadline, a retryable failure that names the thread ID and its holder', async () => {
    const dir = tempDir();
    const holder = spawn('sleep', ['1000'], { stdio: 'ignore' });
    try {
      const tid = holder.pid as number;
      const failure = await restoreWith(threadIdCriu(dir, tid, 4321).path, 300, dir).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(EngineError);
      expect((failure as EngineError).reason).toBe(
        `Unable to create a thread: -17 (a thread ID of the program is taken on this node); held now: thread ID ${tid} by PID ${tid} (sleep)`,
      );
      expect((failure as EngineError).retryable).toBe(true);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('CriuEngine.restore past its deadline', () => {
  afterEach(cleanUp);

  it('kills criu and the processes it had restored, keeps nothing running, and says so', async () => {
    const dir = tempDir();
    const path = join(dir, 'criu');
    // A restore that forked the tree's first process and then hangs, as a stuck criu would.
    writeFileSync(path, `#!/bin/sh\nsleep 1000 &\necho $! > '${join(dir, 'restored')}'\nexec sleep 1000\n`);
    chmodSync(path, 0o755);
    const started = Date.now();
    const failure = await new CriuEngine(path, { deadlineMs: 500 })
      .restore({ imagesDir: join(dir, 'images'), scratchDir: dir, requester: SELF })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EngineError);
    expect((failure as EngineError).reason).toBe('criu restore ran past its deadline and was killed with the 1 process(es) it had restored; the checkpoint is kept');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    const restored = Number(readFileSync(join(dir, 'restored'), 'utf8'));
    await waitUntil(() => isGone(restored), `the half-restored process ${restored} to be gone`);
  });

  it('uses the sooner deadline of the request', async () => {
    const dir = tempDir();
    const path = join(dir, 'criu');
    writeFileSync(path, '#!/bin/sh\nexec sleep 1000\n');
    chmodSync(path, 0o755);
    const started = Date.now();
    const failure = await new CriuEngine(path)
      .restore({ imagesDir: join(dir, 'images'), scratchDir: dir, requester: SELF, deadline: Date.now() + 300 })
      .catch((error: unknown) => error);
    expect((failure as EngineError).reason).toMatch(/^criu restore ran past its deadline/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('CriuEngine.restore of a connection whose local address this node lacks', () => {
  afterEach(cleanUp);

  it('tries again with the connections closed (criu 4.2.1 on a removed address), once', async () => {
    const dir = tempDir();
    const argsFile = join(dir, 'args');
    const criu = join(dir, 'criu');
    // Fails as criu does while restoring such a connection established; restores it closed.
    writeFileSync(
      criu,
      `#!/bin/sh
echo "$*" >> '${argsFile}'
for a in "$@"; do [ "$prev" = -W ] && work=$a; [ "$prev" = --pidfile ] && pidfile=$a; prev=$a; done
case " $* " in *" --tcp-established "*)
  echo "(00.057115)   9351: Error (soccr/soccr.c:499): Can't bind inet socket back: Cannot assign requested address" > "$work/restore.log"
  exit 1 ;;
esac
echo 4321 > "$pidfile"
`,
    );
    chmodSync(criu, 0o755);
    await expect(restoreWith(criu, 1_000, dir)).resolves.toBe(4321);
    const runs = readFileSync(argsFile, 'utf8').trim().split('\n');
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatch(/ --tcp-established /);
    expect(runs[1]).toMatch(/ --tcp-close /);
    expect(runs[1]).not.toMatch(/--tcp-established/);
  });
});
