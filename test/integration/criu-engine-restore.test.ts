/**
 * CriuEngine.restore's answer to "Can't fork for N: File exists", with a stand-in for criu (a
 * shell script that fails the way criu 4.1.1 does while PID N is taken): it waits for N to
 * leave /proc and tries again, and its deadline bounds the tries even when criu names a PID
 * that /proc never shows (seen in a nested PID namespace whose init never reaps).
 */
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CriuEngine } from '../../src/engine/criu.js';
import { EngineError } from '../../src/engine/engine.js';
import { cleanUp, SELF, tempDir } from '../helpers/daemon-fixtures.js';

/**
 * A criu that reports BUSY_PID taken while /proc/BUSY_PID exists (or always, ALWAYS_BUSY), else
 * restores: writes --pidfile and exits 0. Counts its runs.
 */
function standInCriu(dir: string, busyPid: number, restoredPid: number, alwaysBusy = false): { path: string; runs: () => number } {
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
if ${alwaysBusy ? 'true' : `[ -e /proc/${busyPid} ]`}; then
  echo "(00.035731) Error (criu/cr-restore.c:1230): Can't fork for ${busyPid}: File exists" > "$work/restore.log"
  exit 1
fi
echo ${restoredPid} > "$pidfile"
`,
  );
  chmodSync(path, 0o755);
  return { path, runs: () => readFileSync(runsFile, 'utf8').split('\n').filter(Boolean).length };
}

function restoreWith(criu: string, pidWaitMs: number, scratchDir: string): Promise<number> {
  return new CriuEngine(criu, pidWaitMs).restore({ imagesDir: join(scratchDir, 'images'), scratchDir, requester: SELF });
}

describe('CriuEngine.restore with a PID taken', () => {
  afterEach(cleanUp);

  it('waits for the PID to leave /proc, then restores', async () => {
    const dir = tempDir();
    const holder = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const holderGone = new Promise((resolve) => holder.once('exit', resolve));
    const criu = standInCriu(dir, holder.pid as number, 4321);
    const restored = restoreWith(criu.path, 10_000, dir);
    setTimeout(() => holder.kill('SIGKILL'), 300);
    await expect(restored).resolves.toBe(4321);
    await holderGone;
    expect(criu.runs()).toBeGreaterThanOrEqual(2);
  });

  it('gives up at the deadline, tries included, when criu names a PID that /proc does not show', async () => {
    const dir = tempDir();
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    const criu = standInCriu(dir, pidMax + 1, 4321, true); // no process can hold it: criu's word only
    const started = Date.now();
    const failure = await restoreWith(criu.path, 500, dir).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EngineError);
    expect((failure as EngineError).reason).toBe(`Can't fork for ${pidMax + 1}: File exists`);
    expect((failure as EngineError).retryable).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    // One try per pause of 50 ms at most, not a loop of criu runs for as long as criu says so.
    expect(criu.runs()).toBeLessThanOrEqual(12);
  });
});
