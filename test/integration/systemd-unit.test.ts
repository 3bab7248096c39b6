/**
 * scripts/ckpt-daemon.service passes `systemd-analyze verify` (no systemd needs to run: CI's
 * PID 1 is not systemd). verify also checks that ExecStart names an executable, so the unit is
 * verified as installed over this checkout: its ExecStart pointed at this checkout's ckpt-daemon.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/launcher-harness.js';
import { realPartAvailable } from '../helpers/real-parts.js';

const UNIT = join(ROOT, 'scripts/ckpt-daemon.service');
const EXEC_START = /^ExecStart=(\S+)/m;

const verifier = () => {
  const version = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  return version.status === 0 ? undefined : 'systemd-analyze is missing (apt-get install systemd; scripts/test-all.sh does it as root)';
};

describe.runIf(realPartAvailable('the systemd unit check', verifier))('scripts/ckpt-daemon.service', () => {
  it('runs ckpt-daemon and passes systemd-analyze verify', () => {
    const text = readFileSync(UNIT, 'utf8');
    expect(basename(EXEC_START.exec(text)?.[1] ?? '')).toBe('ckpt-daemon');
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-unit-'));
    try {
      const unit = join(dir, basename(UNIT));
      writeFileSync(unit, text.replace(EXEC_START, `ExecStart=${join(ROOT, 'bin/ckpt-daemon')}`));
      const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
      const output = `${verify.stdout}${verify.stderr}`;
      // Warnings about the system's own units are not ours; any line about this unit is.
      const ours = output.split('\n').filter((line) => line.includes(basename(UNIT)));
      expect({ status: verify.status, ours }, output).toEqual({ status: 0, ours: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
