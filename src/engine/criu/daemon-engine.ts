/**
 * The CRIU engine as ckpt-daemon and the dry run build it (engine/daemon-registry.ts): criu is
 * probed first (criu-probe.ts), and every call then runs in the mode the probe found.
 */
import { CliError, DaemonExit } from '../../base/exit-codes.js';
import type { DaemonEngine } from '../engine.js';
import { CriuEngine } from './criu.js';
import { describeDumpRate, measureDumpRate, probeCriu, type CriuFindings } from './criu-probe.js';

/** What the engine takes of ckpt-daemon's command line. */
export interface CriuDaemonSettings {
  /** The criu command. */
  criu: string;
  /** Seconds one criu dump or restore may run (--criu-deadline). */
  criuDeadline: number;
  /** Bytes of node-local files one checkpoint carries (--local-state-limit). */
  localStateLimit: number;
  /** Bytes of open files' content one checkpoint keeps (--keep-files-max). */
  keepFilesMax: number;
  criuBreakpoints: 'auto' | 'on' | 'off';
  restore: 'lazy' | 'full';
}

/** What the daemon's start and ckpt-daemon --check find of criu here, with the memory canary's dump rate where criu works. */
export async function probeForDaemon(settings: CriuDaemonSettings): Promise<CriuFindings> {
  const findings = await probeCriu(settings.criu, { breakpoints: settings.criuBreakpoints });
  if (settings.restore === 'full') findings.settings.lazyPages = false;
  if (!findings.problem) findings.dumpRate = await measureDumpRate(settings.criu, findings.settings);
  return findings;
}

export const CRIU_DAEMON_ENGINE: DaemonEngine<CriuDaemonSettings> = {
  title: 'real CRIU',

  /** The criu engine in the mode the probe found, or a CliError that says why criu cannot work here. */
  async forDaemon(settings, logger) {
    if (process.getuid?.() !== 0) {
      throw new CliError(
        "the criu engine needs root (CRIU dumps and restores other users' processes); as a user, try --engine restart",
        DaemonExit.NotRoot,
      );
    }
    const findings = await probeForDaemon(settings);
    if (findings.problem) throw new CliError(`criu cannot checkpoint on this node: ${findings.problem}`, DaemonExit.NoCriu);
    logger.log(
      'info',
      `criu ${findings.version}: ${findings.breakpoints}; network lock ${findings.settings.networkLock}; ` +
        `${findings.canaryMs === undefined ? 'no canary (--criu-breakpoints)' : `canary dumped and restored in ${findings.canaryMs} ms`}; ` +
        `${findings.settings.lazyPages ? 'lazy restores (userfaultfd)' : `full restores (${findings.userfaultfd ? '--restore full' : 'no userfaultfd here'})`}; ` +
        `each criu run is bounded to ${settings.criuDeadline} s; dump rate: ${describeDumpRate(findings.dumpRate ?? 'not run')}`,
    );
    const engine = new CriuEngine(settings.criu, {
      settings: findings.settings,
      deadlineMs: settings.criuDeadline * 1000,
      notice: (message) => logger.log('warn', message),
      localStateLimit: settings.localStateLimit,
      keepFilesMax: settings.keepFilesMax,
    });
    return { engine, dumpRate: typeof findings.dumpRate === 'string' ? undefined : findings.dumpRate };
  },

  /** Real CRIU where it dumps and restores the probe's canary here (root, a working criu), in the mode the probe found. */
  async forDryRun(criu) {
    const findings = await probeCriu(criu);
    return findings.problem ? { problem: findings.problem } : { engine: new CriuEngine(criu, { settings: findings.settings }) };
  },
};
