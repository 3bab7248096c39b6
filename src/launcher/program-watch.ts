/**
 * Watching the program and its run directory: inotify on the run directory (and on the images
 * folder while a restore is awaited), a safety poll that catches what inotify missed (e.g. on
 * NFS), the program's liveness through /proc, and the live relay of its output. What the files
 * mean is decided in decisions.ts; this module only reads them and says when to look.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { parseDaemonReport, type DaemonReport } from '../protocol/daemon-report.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { parseCheckpointStats, parsePagesIn, type RunDirPaths } from '../protocol/run-dir.js';
import { OutputRelay } from '../proc/output-relay.js';
import { processState, ProcessHandle } from '../proc/processes.js';
import { formatMegabytes } from '../base/sizes.js';
import type { RunState } from '../state/run-state.js';
import type { RunFiles } from '../engine/link.js';
import { parseExitStatus, parsePidfile } from './decisions.js';

/** Coalesces the bursts of inotify events a chatty program causes into one read. */
const RELAY_DELAY_MS = 20;

/** Reads a small file the daemon or the shim writes; undefined while it is absent. */
function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readReport(path: string): DaemonReport | undefined {
  const text = readIfPresent(path);
  return text === undefined ? undefined : parseDaemonReport(text);
}

export interface WatchHooks {
  /** Something in the run directory may have moved the run forward: look. */
  look(): void;
  /** Whether a restore is awaited (the pidfile then appears in the images folder). */
  resuming(): boolean;
  /** This job resumed a checkpoint (a later restore_failed then tells of its lazy restore). */
  resumedJob: boolean;
  /** Tells the job's log. */
  say(message: string): void;
}

export class ProgramWatch {
  /** The root of the program's tree, once known. */
  program: ProcessHandle | undefined;
  private readonly relays: OutputRelay[];
  private readonly runDirWatcher: FSWatcher;
  private imagesWatcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private pollEvery = 0;
  private relayScheduled = false;
  private stopped = false;
  private pagesInSaid = false;

  constructor(
    private readonly paths: RunDirPaths,
    relayed: RunState['relayed'],
    private readonly hooks: WatchHooks,
  ) {
    this.relays = [new OutputRelay(paths.stdoutLog, 1, relayed.stdout), new OutputRelay(paths.stderrLog, 2, relayed.stderr)];
    this.runDirWatcher = watch(paths.dir, (_event, name) => {
      if (name === 'stdout.log' || name === 'stderr.log') this.scheduleRelay();
      else if (name === 'checkpoint') this.followImages();
      else if (name === 'pages_in') this.reportPagesIn();
      else hooks.look();
    });
  }

  /** What the run directory and /proc say now. Liveness first: a status written before the end is then seen. */
  readFiles(checkpointOkAtRequest: string | undefined): RunFiles {
    const programAlive = this.program?.isAlive();
    return {
      programAlive,
      exitStatus: parseExitStatus(readIfPresent(this.paths.exitStatus)),
      restoreFailed: readReport(this.paths.restoreFailed),
      resumedJob: this.hooks.resumedJob,
      restoredPid: parsePidfile(readIfPresent(this.paths.pidfile)),
      dumpFailed: readReport(this.paths.dumpFailed),
      checkpointOk: checkpointIdentity(this.paths.checkpointOk),
      checkpointOkAtRequest,
      checkpointStats: parseCheckpointStats(readIfPresent(this.paths.checkpointStats)),
    };
  }

  /** The program's state letter in /proc (T/t: stopped), undefined while none is watched or gone. */
  programState(): string | undefined {
    return this.program === undefined ? undefined : processState(this.program.pid);
  }

  /** A lazy restore's memory is all in: said once, with the daemon's figures. */
  private reportPagesIn(): void {
    const pagesIn = parsePagesIn(readIfPresent(this.paths.pagesIn));
    if (this.pagesInSaid || !this.hooks.resumedJob || pagesIn === undefined) return;
    this.pagesInSaid = true;
    this.hooks.say(`all ${formatMegabytes(pagesIn.bytes)} of the program's memory in after ${(pagesIn.ms / 1000).toFixed(1)} s (lazy restore)`);
  }

  watchProgram(pid: number): void {
    this.program = new ProcessHandle(pid);
    this.hooks.look();
  }

  /**
   * The safety poll's period (ms): the supervisor polls fast only while waiting on the daemon, so
   * that idle CPU stays near zero for long jobs (the program's exit, output and status all have push events).
   */
  setPollPeriod(every: number): void {
    if (every === this.pollEvery || this.stopped) return;
    this.pollEvery = every;
    clearInterval(this.poll);
    this.poll = setInterval(() => {
      this.pumpOutput();
      this.hooks.look();
    }, every);
  }

  /** The images folder is replaced by every dump: (re)attach a watcher for the pidfile. */
  followImages(): void {
    this.imagesWatcher?.close();
    this.imagesWatcher = undefined;
    if (this.stopped || !this.hooks.resuming()) return;
    try {
      this.imagesWatcher = watch(this.paths.images, () => this.hooks.look());
    } catch {
      // no images folder yet: the run dir watcher calls again when it appears
    }
    this.hooks.look();
  }

  pumpOutput(): void {
    for (const relay of this.relays) relay.pump();
  }

  /** The bytes relayed so far of each output file. */
  relayed(): RunState['relayed'] {
    return { stdout: this.relays[0].offset, stderr: this.relays[1].offset };
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    this.runDirWatcher.close();
    this.imagesWatcher?.close();
  }

  private scheduleRelay(): void {
    if (this.relayScheduled) return;
    this.relayScheduled = true;
    setTimeout(() => {
      this.relayScheduled = false;
      this.pumpOutput();
    }, RELAY_DELAY_MS);
  }
}
