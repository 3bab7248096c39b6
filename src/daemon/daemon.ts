/**
 * ckpt-daemon's core, also embedded by the local dry run (`ckpt-run simulate`): serves the
 * spool's checkpoint and resume requests (src/protocol/spool-request.ts) with an engine.
 * A malformed, hostile or failing request is logged and never stops the daemon; when the run
 * folder passed its checks, the job also finds the reason there (dump_failed/restore_failed).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeCarried } from '../protocol/local-state.js';
import { formatMegabytes } from '../base/sizes.js';
import { EngineError, type CheckpointEngine } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { PagesIn } from '../protocol/run-dir.js';
import { checkpointIdentity } from '../protocol/checkpoint-identity.js';
import { formatDaemonReport } from '../protocol/daemon-report.js';
import type { DumpRate } from '../protocol/heartbeat.js';
import { parseRequest, type Requester, type SpoolRequest } from '../protocol/spool-request.js';
import { readAnswerBy, readLeaveRunning, readProgramStarted, readResumeFrom } from './answer-by.js';
import { discardPartialDumps, serveCheckpoint } from './checkpoint-service.js';
import { startHeartbeat } from './heartbeat.js';
import { checkJobProcess, JobLeases } from './job-leases.js';
import { KeyedQueue } from './keyed-queue.js';
import { publishFile } from './owned-files.js';
import { PinnedDir } from './pinned-dir.js';
import { Refusal } from './refusal.js';
import { checkJobOwner, checkServable, checkTargetProcess, openRunDir } from './request-checks.js';
import { readRequestFile } from './request-file.js';
import { lookupRequester } from './requester.js';
import { serveResume } from './restore-service.js';
import { killAll, ProcessHandle, treeOf } from '../proc/processes.js';
import { RUN_FILES } from './run-files.js';
import { discard, pickUp, prepareSpool } from './spool.js';
import { SpoolWatcher } from './spool-watcher.js';

export interface DaemonEvent {
  kind: 'dump' | 'restore';
  jobId: string;
  dir: string;
  ok: boolean;
  ms: number;
  reason?: string;
  imageBytes?: number;
  /** A restore's restored root. */
  pid?: number;
  /** A lazy restore: ms is when the program ran; every page was in after allInMs. */
  allInMs?: number;
}

export interface DaemonOptions {
  spoolDir: string;
  engine: CheckpointEngine;
  logger: Logger;
  /**
   * The key the daemon signs its images with, and checks them against before any restore
   * (image-signature.ts): the same on every node that may restore this node's checkpoints.
   */
  imageKey: Buffer;
  onEvent?: (event: DaemonEvent) => void;
  /** What the daemon measured of its dumps at start, published in its heartbeat for the jobs' plans. */
  dumpRate?: DumpRate;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(3)} s`;

/** How a lazy restore's transfer ended, for the log line of the restore. */
const allIn = (pagesIn: PagesIn, ms: number): string =>
  pagesIn.endedFirst
    ? `it ended on its own before every page was in (criu lazy-pages then failed on its exit, a known race: no failure)`
    : `all ${formatMegabytes(pagesIn.bytes)} in after ${seconds(ms)}`;

class RequestServer {
  private readonly queue: KeyedQueue;
  private readonly privateDir: string;
  private readonly leases: JobLeases;

  constructor(private readonly options: DaemonOptions) {
    const { logger } = options;
    this.queue = new KeyedQueue((error) => logger.log('error', `internal error while serving a request: ${error.stack}`));
    this.leases = new JobLeases(({ jobId, job, root }, killed) =>
      logger.log('warn', `job ${jobId}: its process ${job.pid} ended while the program restored for it ran (PID ${root.pid}): killed the program's ${killed} process(es), as the job's end would have`),
    );
    this.privateDir = prepareSpool(options.spoolDir);
    for (const name of readdirSync(this.privateDir)) {
      this.discard(join(this.privateDir, name));
      logger.log('warn', `discarded ${name}: taken by an earlier daemon that stopped before serving it`);
    }
  }

  /** Looks at the spool entry NAME: takes, reads and queues it if it is a request. */
  offer(name: string): void {
    const picked = pickUp(this.options.spoolDir, this.privateDir, name);
    if (!picked) return;
    let owner: number | undefined;
    let request: SpoolRequest;
    try {
      const file = readRequestFile(picked.path);
      owner = file.owner;
      request = parseRequest(picked.kind, picked.jobId, file.body);
    } catch (error) {
      // Whatever the reason (a Refusal, a MalformedRequestError or an I/O error), the daemon goes on.
      const from = owner === undefined ? '' : ` from uid ${owner}`;
      this.options.logger.log('warn', `refused ${name}${from}: ${(error as Error).message}`);
      return;
    } finally {
      this.discard(picked.path);
    }
    const uid = owner; // a const keeps the narrowed type inside the closure
    this.options.logger.log('debug', `took ${name} from uid ${uid}: ${JSON.stringify(request)}`);
    // A job id is any user's to write: one user's requests never wait behind another user's.
    this.queue.run([`job ${uid} ${request.jobId}`, `dir ${request.dir}`], () => this.serve(request, uid));
  }

  private discard(path: string): void {
    try {
      discard(path);
    } catch (error) {
      this.options.logger.log('error', `cannot remove ${path}: ${(error as Error).message}`);
    }
  }

  private async serve(request: SpoolRequest, uid: number): Promise<void> {
    const { logger, onEvent } = this.options;
    const started = Date.now();
    const kind = request.kind === 'checkpoint' ? 'dump' : 'restore';
    const what = request.kind === 'checkpoint' ? `dump of PID ${request.pid} into ${request.dir}` : `restore of ${request.dir}`;
    const event = { kind, jobId: request.jobId, dir: request.dir } as const;
    let requester: Requester | undefined;
    let run: PinnedDir | undefined;
    try {
      requester = await lookupRequester(uid);
      checkServable(requester);
      run = openRunDir(request.dir, requester);
      checkJobOwner(request.jobId, requester);
      let runningMs: number | undefined;
      const running = (pid: number): void => {
        runningMs = Date.now() - started;
        logger.log('debug', `job ${request.jobId}: program running after ${seconds(runningMs)} (PID ${pid})`);
      };
      const { detail, imageBytes, pid, pagesIn } = await this.act(request, run, requester, running);
      const ms = Date.now() - started;
      const lazy = pagesIn ? `; program running after ${seconds(runningMs ?? ms)}, ${allIn(pagesIn, ms)} (lazy restore)` : '';
      logger.log('info', `job ${request.jobId}: ${what} done in ${seconds(ms)}${detail}${lazy}`);
      onEvent?.({ ...event, ok: true, ms: pagesIn ? (runningMs ?? ms) : ms, imageBytes, pid, allInMs: pagesIn && !pagesIn.endedFirst ? ms : undefined });
    } catch (error) {
      const ms = Date.now() - started;
      const reason = (error as Error).message;
      const who = requester ? `${requester.name} (uid ${uid})` : `uid ${uid}`;
      const verdict = error instanceof Refusal ? `refused ${what} for ${who}` : `${what} for ${who} failed after ${seconds(ms)}`;
      logger.log('warn', `job ${request.jobId}: ${verdict}: ${reason}`);
      onEvent?.({ ...event, ok: false, ms, reason });
      if (run && requester) this.report(run, kind, error as Error, requester);
      if (error instanceof EngineError && error.thenKill !== undefined) killAll(treeOf(error.thenKill), 'SIGKILL');
    } finally {
      run?.close();
    }
  }

  /** The dump or the restore itself, once the request passed the checks common to both. */
  private async act(
    request: SpoolRequest,
    run: PinnedDir,
    requester: Requester,
    running: (pid: number) => void,
  ): Promise<{ detail: string; imageBytes?: number; pid?: number; pagesIn?: PagesIn }> {
    const { engine, logger } = this.options;
    for (const name of discardPartialDumps(run)) {
      logger.log('warn', `job ${request.jobId}: removed ${request.dir}/${name}, left by a dump that never completed`);
    }
    const requested = Date.now();
    const deadline = readAnswerBy(run);
    if (request.kind === 'resume') {
      const expected = readResumeFrom(run);
      const job = request.jobPid === undefined ? undefined : checkJobProcess(request.jobPid, requester);
      if (expected !== undefined && expected !== checkpointIdentity(run.path(RUN_FILES.checkpointOk))) {
        throw new EngineError(
          'the checkpoint changed after this job rolled its files back to the one before (a dump for the previous job completed meanwhile); the next job resumes the new one',
          true,
        );
      }
      const hold = (pid: number): void => {
        if (job) this.leases.hold({ jobId: request.jobId, job, root: new ProcessHandle(pid) });
        running(pid);
      };
      const { pid, pagesIn, localState } = await serveResume(engine, run, request.jobId, requester, logger, this.options.imageKey, deadline, hold);
      if (pagesIn && !pagesIn.endedFirst) publishFile(run, RUN_FILES.pagesIn, `${JSON.stringify({ ms: Date.now() - requested, bytes: pagesIn.bytes })}\n`, requester);
      const putBack = localState && describeCarried(localState);
      return { detail: `: PID ${pid}${putBack ? `; node-local files put back first: ${putBack}` : ''}`, pid, pagesIn };
    }
    checkTargetProcess(request.pid, requester);
    const stats = await serveCheckpoint(engine, run, request.pid, requester, this.options.imageKey, { deadline, leaveRunning: readLeaveRunning(run), programStarted: readProgramStarted(run) });
    const frozen = stats.frozenMs === undefined ? '' : `, program frozen ${seconds(stats.frozenMs)}`;
    const kept = stats.kept ? `, ${stats.kept.files} open file(s) kept: ${formatMegabytes(stats.kept.bytes)} in ${seconds(stats.kept.ms)}${stats.kept.over.length ? `, over the bound: ${stats.kept.over.join(' ')}` : ''}` : '';
    const carried = stats.localState && describeCarried(stats.localState);
    const local = carried ? `; node-local files carried: ${carried}` : '';
    return { detail: ` (${formatMegabytes(stats.bytes)}${frozen}${kept}${stats.leftRunning ? ', left running' : ''})${local}`, imageBytes: stats.bytes };
  }

  /** Tells the job why: DIR/dump_failed or DIR/restore_failed. */
  private report(run: PinnedDir, kind: 'dump' | 'restore', error: Error, requester: Requester): void {
    const name = kind === 'dump' ? RUN_FILES.dumpFailed : RUN_FILES.restoreFailed;
    const report = error instanceof EngineError
      ? { reason: error.reason, retryable: error.retryable, log: error.log, program: error.program }
      : { reason: error.message, retryable: false };
    try {
      publishFile(run, name, formatDaemonReport(report), requester);
    } catch (writeError) {
      this.options.logger.log('error', `cannot write ${run.location()}/${name}: ${(writeError as Error).message}`);
    }
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  stop(): void {
    this.leases.stop();
  }
}

/** Serves the spool until stop(), which waits for the requests in progress. */
export async function startDaemon(options: DaemonOptions): Promise<{ stop(): Promise<void> }> {
  const { logger, spoolDir } = options;
  const server = new RequestServer(options);
  const spool = PinnedDir.open(spoolDir);
  const watcher = new SpoolWatcher(
    spoolDir,
    (name) => server.offer(name),
    (error) => logger.log('error', `watching ${spoolDir}: ${error.message}`),
  );
  const heartbeat = startHeartbeat(spool, options.dumpRate, (error) => logger.log('error', `heartbeat: ${error.message}`));
  watcher.start();
  logger.log('info', `serving ${spoolDir} with the ${options.engine.name} engine (PID ${process.pid})`);
  return {
    async stop() {
      watcher.stop();
      heartbeat.stop();
      await server.idle();
      server.stop();
      spool.close();
      logger.log('info', 'stopped');
    },
  };
}

/** Serves the requests already in the spool, then resolves (ckpt-daemon --once). */
export async function serveQueued(options: DaemonOptions): Promise<void> {
  const server = new RequestServer(options);
  for (const name of readdirSync(options.spoolDir)) server.offer(name);
  await server.idle();
}
