/** An in-process ckpt-daemon on a temporary spool, with its log and events at hand. */
import { writeFileAtomic } from '../../src/protocol/atomic-write.js';
import { startDaemon, type DaemonEvent } from '../../src/daemon/daemon.js';
import type { CheckpointEngine } from '../../src/engine/engine.js';
import { formatRequest, requestPath, type SpoolRequest } from '../../src/protocol/spool-request.js';
import { join } from 'node:path';
import { waitUntil } from './daemon-fixtures.js';

export interface TestDaemon {
  spoolDir: string;
  lines: string[];
  events: DaemonEvent[];
  request(request: SpoolRequest): void;
  /** Waits for the daemon's event about JOBID (kind), and returns it. */
  event(kind: DaemonEvent['kind'], jobId: string): Promise<DaemonEvent>;
  /** Waits for a log line matching PATTERN, and returns it. */
  logged(pattern: RegExp): Promise<string>;
  stop(): Promise<void>;
}

export async function startTestDaemon(base: string, engine: CheckpointEngine): Promise<TestDaemon> {
  const spoolDir = join(base, 'spool');
  const lines: string[] = [];
  const events: DaemonEvent[] = [];
  const daemon = await startDaemon({
    spoolDir,
    engine,
    logger: { log: (level, message) => lines.push(`${level}: ${message}`) },
    onEvent: (event) => events.push(event),
  });
  const find = <T>(items: T[], match: (item: T) => boolean, what: string): Promise<T> =>
    waitUntil(() => items.some(match), what).then(() => items.find(match) as T);
  return {
    spoolDir,
    lines,
    events,
    request: (request) => writeFileAtomic(requestPath(spoolDir, request.kind, request.jobId), formatRequest(request)),
    event: (kind, jobId) => find(events, (e) => e.kind === kind && e.jobId === jobId, `the daemon's ${kind} of job ${jobId}\n${lines.join('\n')}`),
    logged: (pattern) => find(lines, (line) => pattern.test(line), `a log line ${pattern}\n${lines.join('\n')}`),
    stop: () => daemon.stop(),
  };
}
