/** An in-process ckpt-daemon on a temporary spool, with its log and events at hand. */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { IMAGE_KEY_BYTES, SIGNATURE_FILE, signImages } from '../../src/daemon/image-signature.js';
import { PinnedDir } from '../../src/daemon/pinned-dir.js';
import { writeFileAtomic } from '../../src/protocol/atomic-write.js';
import { startDaemon, type DaemonEvent } from '../../src/daemon/daemon.js';
import type { CheckpointEngine } from '../../src/engine/engine.js';
import { formatRequest, requestPath, type SpoolRequest } from '../../src/protocol/spool-request.js';
import { join } from 'node:path';
import { waitUntil } from './poll.js';

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

/** The image key of every in-process test daemon: a daemon started again restores what an earlier one dumped. */
export const TEST_IMAGE_KEY = randomBytes(IMAGE_KEY_BYTES);

/** Signs the images in DIR for uid OWNER as a test daemon would have after its dump. */
export function signAsTheDaemon(dir: string, owner: number, imageKey: Buffer = TEST_IMAGE_KEY): void {
  const images = PinnedDir.open(dir);
  try {
    writeFileSync(join(dir, SIGNATURE_FILE), signImages(images, imageKey, owner));
  } finally {
    images.close();
  }
}

export async function startTestDaemon(base: string, engine: CheckpointEngine, imageKey: Buffer = TEST_IMAGE_KEY): Promise<TestDaemon> {
  const spoolDir = join(base, 'spool');
  const lines: string[] = [];
  const events: DaemonEvent[] = [];
  const daemon = await startDaemon({
    spoolDir,
    engine,
    imageKey,
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
