/**
 * Lazy restore: the restored program runs before its memory is back. `criu restore --lazy-pages`
 * maps the tree's anonymous memory empty and registers it with userfaultfd; a `criu lazy-pages`
 * server (sharing criu's work folder, where it listens on lazy-pages.socket) fills every page
 * from the images: the ones the program touches first, then all the rest in large chunks, and
 * exits once every page is in. Measured here for 2 GiB: the ordinary restore takes 7-9 s (one
 * preadv into fresh memory, with this VM's slow page faults); lazily the program runs after
 * 0.13 s and every page is in by 0.67 s.
 * Until the server is done the images must stay as they are, and a server that dies or stalls
 * leaves a program that would block for ever on its next missing page: it is then killed, and the
 * restore fails with the checkpoint intact, so that the next job resumes it again.
 */
import { execa, type ResultPromise } from 'execa';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hasEnded, readOrEmpty, sleep, treeOf } from '../../proc/processes.js';
import { socketInodes } from '../../proc/tcp-sockets.js';
import type { PagesIn } from '../../protocol/run-dir.js';
import { EngineError } from '../engine.js';
import { criuFailure } from './criu-log.js';

const SOCKET = 'lazy-pages.socket';
/** /proc/net/unix's Flags of a listening socket (__SO_ACCEPTCON). */
const LISTENING = '00010000';
/** The server listens within this long; it takes a few ms. */
const LISTEN_TIMEOUT_MS = 10_000;
/** A server that reads nothing for this long while pages are missing has stalled. */
export const STALL_MS = 20_000;
const POLL_MS = 50;

/** The restored program would block for ever on its next missing page: it goes, once the job was told. */
const KILLED = 'the restored program is killed; the checkpoint is kept';

/**
 * criu 4.2.1's lazy-pages fails when its program exits on its own before every page is in: the
 * exit's teardown sends REMOVE events, and on this kernel (6.18) unregistering a range of a
 * process whose memory is gone gives EINVAL where criu expects ENOMEM, its sign of an exit
 * (criu/uffd.c handle_remove). Seen in 15 of 19 lazy restores of a node program that exits at
 * once, beside 2 busy loops; in a dry run it was a failed restore (exit 13) and the resubmitted
 * job did the program's end again.
 */
const EXIT_RACE = /Failed to unregister \([0-9a-f]+ - [0-9a-f]+\): Invalid argument/;
/** How long an exiting tree may take to finish its exit once its memory is gone. */
const EXIT_GRACE_MS = 2_000;

/**
 * Whether the server PID listens on its socket. The socket file appears at bind(), a moment before
 * listen(): a restore that connects in between is refused ("uffd: connect to lazy-pages.socket
 * failed: Connection refused", seen), so the listening socket is looked for among the server's
 * own descriptors in /proc/net/unix (flag __SO_ACCEPTCON); its path there is relative, the same
 * for every server.
 */
function listening(pid: number): boolean {
  const inodes = new Set(socketInodes(pid));
  // Num RefCount Protocol Flags Type St Inode Path
  return readOrEmpty(`/proc/${pid}/net/unix`).split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[3] === LISTENING && inodes.has(fields[6]) && fields[7]?.endsWith(SOCKET);
  });
}

/** Bytes the process has read so far (/proc/PID/io rchar): the server's progress. */
function bytesRead(pid: number): number | undefined {
  try {
    return Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

/** Whether every process of the tree rooted at ROOT is gone or a zombie, within EXIT_GRACE_MS. */
async function treeEnded(root: number): Promise<boolean> {
  const until = Date.now() + EXIT_GRACE_MS;
  for (;;) {
    if (treeOf(root).every(hasEnded)) return true;
    if (Date.now() > until) return false;
    await sleep(POLL_MS);
  }
}

/** The memory pages of a checkpoint (pages-N.img; staged copies link to the originals). */
function pagesBytes(imagesDir: string): number {
  return readdirSync(imagesDir)
    .filter((name) => /^pages-\d+\.img$/.test(name))
    .reduce((sum, name) => sum + statSync(join(imagesDir, name)).size, 0);
}

export class LazyPagesServer {
  private readonly started = Date.now();

  private constructor(
    private readonly child: ResultPromise,
    private readonly imagesDir: string,
    private readonly workDir: string,
  ) {}

  /** Starts the server for IMAGESDIR in criu's work folder WORKDIR and waits (bounded) until it listens. */
  static async start(criu: string, imagesDir: string, workDir: string, env: Record<string, string>): Promise<LazyPagesServer> {
    const child = execa(criu, ['lazy-pages', '-D', imagesDir, '-W', workDir, '-o', 'lazy-pages.log', '-v4'], {
      reject: false,
      stdin: 'ignore',
      detached: true,
      env,
    });
    const server = new LazyPagesServer(child, imagesDir, workDir);
    const deadline = Date.now() + LISTEN_TIMEOUT_MS;
    while (!listening(child.pid as number)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        server.stop();
        const why = child.exitCode !== null ? `exited with code ${child.exitCode}` : `did not listen within ${LISTEN_TIMEOUT_MS / 1000} s`;
        throw new EngineError(`criu lazy-pages ${why} (see lazy-pages.log); the checkpoint is kept`, true);
      }
      await sleep(POLL_MS);
    }
    return server;
  }

  /**
   * Resolves once the server brought every page in and exited. A server that fails, stalls (reads
   * nothing for STALL_MS) or is still running at DEADLINE is killed; the rejection says why and
   * names RESTORED's tree to kill once the job has been told (EngineError.thenKill).
   */
  async transfer(restored: number, deadline: number): Promise<PagesIn> {
    let lastRead = bytesRead(this.child.pid as number);
    let lastProgress = Date.now();
    for (;;) {
      const exited = await Promise.race([this.child.then(() => true), sleep(500).then(() => false)]);
      if (exited) break;
      const read = bytesRead(this.child.pid as number);
      if (read !== lastRead) [lastRead, lastProgress] = [read, Date.now()];
      const stalled = Date.now() - lastProgress > STALL_MS;
      if (stalled || Date.now() > deadline) {
        this.stop();
        const why = stalled ? `read nothing for ${STALL_MS / 1000} s` : 'was still bringing pages in at the deadline';
        throw new EngineError(`criu lazy-pages ${why}: ${KILLED}`, true, undefined, undefined, restored);
      }
    }
    const result = await this.child;
    const ms = Date.now() - this.started;
    if (result.exitCode === 0) return { ms, bytes: pagesBytes(this.imagesDir) };
    const error = criuFailure(readOrEmpty(join(this.workDir, 'lazy-pages.log')), '').reason;
    if (EXIT_RACE.test(error) && (await treeEnded(restored))) return { ms, bytes: 0, endedFirst: true };
    const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
    const said = error ? ` (lazy-pages.log: ${error})` : '';
    throw new EngineError(`criu lazy-pages ${how} before every page was in${said}: ${KILLED}`, true, undefined, undefined, restored);
  }

  /** Kills the server (a restore that failed no longer needs it). */
  stop(): void {
    try {
      process.kill(-(this.child.pid as number), 'SIGKILL');
    } catch {
      // gone
    }
  }
}
