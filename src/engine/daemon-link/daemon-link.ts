/**
 * The job's side of the spool protocol with the node's checkpoint daemon: requests written
 * into the spool, and the daemon's liveness (its heartbeat) watched while one is out. What the
 * heartbeat means is decided in daemon-verdict.ts. The job side of the daemon's engines (criu/, restart/).
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, ExitCode } from '../../base/exit-codes.js';
import { writeFileAtomic } from '../../protocol/atomic-write.js';
import { checkpointIdentity } from '../../protocol/checkpoint-identity.js';
import { HEARTBEAT_FILE, HEARTBEAT_STALE_MS, heartbeatDumpRate, heartbeatFeatures, type DaemonFeature, type DumpRate } from '../../protocol/heartbeat.js';
import { LEAVE_RUNNING } from '../../protocol/run-dir.js';
import { formatRequest, requestPath, type SpoolRequest } from '../../protocol/spool-request.js';
import type { CheckpointLink, LinkContext, PeriodicAnswer, RunFiles } from '../link.js';
import { daemonVerdict } from './daemon-verdict.js';

/** What the daemon link takes of the job and the supervisor (link.ts says what each is). */
export type DaemonLinkOptions = Pick<LinkContext, 'spoolDir' | 'jobId' | 'paths' | 'daemonCheck' | 'graceMs' | 'resumeFrom' | 'awaiting' | 'silent'>;

export class DaemonLink implements CheckpointLink {
  checkpointOkAtRequest: string | undefined;
  private check: NodeJS.Timeout | undefined;

  constructor(private readonly options: DaemonLinkOptions) {}

  requestCheckpoint(pid: number, answerBy: number, leaveRunning: boolean): void {
    const { paths, jobId } = this.options;
    this.checkpointOkAtRequest = checkpointIdentity(paths.checkpointOk);
    rmSync(paths.dumpFailed, { force: true });
    rmSync(paths.checkpointStats, { force: true });
    writeFileAtomic(paths.answerBy, `${answerBy}\n`);
    if (leaveRunning) writeFileAtomic(paths.checkpointMode, `${LEAVE_RUNNING}\n`);
    else rmSync(paths.checkpointMode, { force: true });
    this.send({ kind: 'checkpoint', jobId, pid, dir: paths.dir });
  }

  /** A daemon that leaves the program running says so in its heartbeat; another one would stop it. */
  periodic(): PeriodicAnswer {
    const heartbeatPath = this.heartbeatPath();
    const features = this.daemonFeatures();
    // Asked again at each interval: a daemon restarting or upgraded now may say so later.
    if (features === undefined) return { ok: false, askAgain: true, why: `no ckpt-daemon heartbeat ${heartbeatPath} (the node's daemon cannot be asked to leave the program running)` };
    if (features.includes('leave-running')) return { ok: true };
    return { ok: false, askAgain: true, why: `the node's daemon does not say it can leave the program running (no "leave-running" among the features in ${heartbeatPath}: an older ckpt-daemon?)` };
  }

  private heartbeatPath(): string {
    return join(this.options.spoolDir, HEARTBEAT_FILE);
  }

  /** The node's daemon's heartbeat; undefined without one. */
  private heartbeat(): string | undefined {
    try {
      return readFileSync(this.heartbeatPath(), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** What the node's daemon says it can do beyond the public protocol; undefined without a heartbeat. */
  private daemonFeatures(): DaemonFeature[] | undefined {
    const heartbeat = this.heartbeat();
    return heartbeat === undefined ? undefined : (heartbeatFeatures(heartbeat) as DaemonFeature[]);
  }

  /** How fast the node's daemon says it dumped its canary at start; undefined where it says nothing of it. */
  daemonDumpRate(): DumpRate | undefined {
    const heartbeat = this.heartbeat();
    return heartbeat === undefined ? undefined : heartbeatDumpRate(heartbeat);
  }

  /** The daemon's answers are files in the run directory: they are read as they are. */
  answer(files: RunFiles): RunFiles {
    return files;
  }

  /** The daemon dumps the program whatever the reason: only the job's record keeps it. */
  tellReason(): void {}

  requestResume(answerBy: number): void {
    const { paths, jobId } = this.options;
    rmSync(paths.pidfile, { force: true });
    rmSync(paths.restoreFailed, { force: true });
    rmSync(paths.pagesIn, { force: true });
    writeFileAtomic(paths.answerBy, `${answerBy}\n`);
    if (this.options.resumeFrom) writeFileAtomic(paths.resumeFrom, `${this.options.resumeFrom}\n`);
    // This process's PID, for a daemon that takes it (an older one refuses a second line): it
    // kills the restored tree if the job ends without stopping it (daemon/job-leases.ts).
    const lease = this.daemonFeatures()?.includes('job-lease') ? { jobPid: process.pid } : {};
    this.send({ kind: 'resume', jobId, dir: paths.dir, ...lease });
  }

  close(): void {
    clearTimeout(this.check);
    const { spoolDir, jobId } = this.options;
    // A request still unread when the job ends would be served for nobody: a restored tree
    // that no job watches, or the dump of a program that already ended.
    rmSync(requestPath(spoolDir, 'resume', jobId), { force: true });
    rmSync(requestPath(spoolDir, 'checkpoint', jobId), { force: true });
  }

  private send(request: SpoolRequest): void {
    const path = requestPath(this.options.spoolDir, request.kind, this.options.jobId);
    try {
      writeFileAtomic(path, formatRequest(request), { durable: false });
    } catch (error) {
      throw new CliError(`cannot write the request ${path}: ${(error as Error).message}`, ExitCode.SpoolDir);
    }
    if (this.options.daemonCheck) this.lookAgain(path);
  }

  private lookAgain(path: string): void {
    clearTimeout(this.check);
    this.check = setTimeout(() => this.lookAtDaemon(path), this.options.graceMs);
  }

  private lookAtDaemon(path: string): void {
    if (!this.options.awaiting()) return;
    const heartbeatPath = this.heartbeatPath();
    let heartbeatAgeMs: number | undefined;
    try {
      heartbeatAgeMs = Date.now() - statSync(heartbeatPath).mtimeMs;
    } catch {
      heartbeatAgeMs = undefined;
    }
    const verdict = daemonVerdict({
      requestUnread: existsSync(path),
      heartbeatAgeMs,
      requestPath: path,
      heartbeatPath,
      graceMs: this.options.graceMs,
      staleMs: HEARTBEAT_STALE_MS,
    });
    if (verdict.silent) this.options.silent(verdict.detail);
    else this.lookAgain(path);
  }
}
