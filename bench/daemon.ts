/**
 * Which checkpoint daemon serves the benchmark, and what it reports. Both tools talk to the
 * SAME daemon process, through the same spool directory.
 *
 *   restart      bin/ckpt-daemon --engine restart (no CRIU: stops the tree, starts its command
 *                again) — the default where real CRIU cannot run
 *   fake         test/helpers/fake-daemon.sh (polls every 50 ms, reports nothing: the bench
 *                then takes the daemon's time from what it observes in the spool and run dirs)
 *   ckpt-daemon  bin/ckpt-daemon --engine criu (real CRIU); picked by `auto` only as root when
 *                `criu check` passes
 * Both ckpt-daemon kinds are the product itself (no copy of the spool protocol here); their
 * times come from the log: "job J: dump of PID … done in 0.123 s" (ms resolution, from when
 * the daemon starts serving the request). Their image key lives in the bench's sandbox.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export type DaemonKind = 'restart' | 'fake' | 'ckpt-daemon';
export type RequestKind = 'checkpoint' | 'resume';

/** What the daemon's log says of one request. */
export interface DaemonRecord {
  kind: RequestKind;
  job: string;
  ok: boolean;
  durationMs?: number;
  refused?: boolean;
  reason?: string;
  line: string;
}

export interface Daemon {
  kind: DaemonKind;
  pid: number;
  readonly stderr: string;
  reportFor(requestKind: RequestKind, job: string, timeoutMs?: number): Promise<DaemonRecord | undefined>;
  stop(): Promise<void>;
}

function criuWorks(): boolean {
  const result = spawnSync('criu', ['check'], { stdio: 'ignore', timeout: 20_000 });
  return result.status === 0;
}

/** Decides the daemon for `--daemon auto|restart|fake|ckpt-daemon`; `why` says how. */
export function chooseDaemon(wanted: string, root: string): { kind: DaemonKind; why: string } {
  const ckptDaemon = join(root, 'bin/ckpt-daemon');
  if (wanted !== 'auto') {
    if (!(wanted in DAEMON_DESCRIPTIONS)) throw new Error(`unknown daemon ${wanted} (expected auto, restart, fake or ckpt-daemon)`);
    return { kind: wanted as DaemonKind, why: 'chosen with --daemon' };
  }
  const isRoot = process.geteuid?.() === 0;
  if (!existsSync(ckptDaemon)) throw new Error('bin/ckpt-daemon is not built yet (npm run build)');
  if (!isRoot) return { kind: 'restart', why: 'not root: real CRIU needs root' };
  if (!criuWorks()) return { kind: 'restart', why: '`criu check` fails or criu is not installed' };
  return { kind: 'ckpt-daemon', why: 'root, bin/ckpt-daemon and a working criu' };
}

export const DAEMON_DESCRIPTIONS: Record<DaemonKind, string> = {
  restart: 'bin/ckpt-daemon --engine restart (no CRIU: stops the tree, restarts its command; its dump/restore times read from its log, ms resolution)',
  fake: 'test/helpers/fake-daemon.sh (restart engine, 50 ms polling; no self-report: daemon time observed by the bench)',
  'ckpt-daemon': 'bin/ckpt-daemon --engine criu (real CRIU; its dump/restore times read from its log, ms resolution)',
};

/** What one line of ckpt-daemon's log says: that it is ready, or the records of requests it served or refused. */
function readLogLine(line: string): 'ready' | DaemonRecord[] {
  if (/ serving \S+ with the \S+ engine /.test(line)) return 'ready';
  const records: DaemonRecord[] = [];
  // "job J: dump of PID … done in 0.123 s" / "… failed after 0.123 s: why"
  const match = /job (\S+): (?:refused )?(dump|restore) of .*? (done in|failed after) ([\d.]+) s/.exec(line);
  if (match) {
    records.push({ kind: match[2] === 'dump' ? 'checkpoint' : 'resume', job: match[1], ok: match[3] === 'done in', durationMs: Number(match[4]) * 1000, line });
  }
  // "refused J.checkpoint from uid 0: why": the request was dropped, nothing will come.
  const refused = /refused (\S+)\.(checkpoint|resume)(?: from uid \d+)?: (.*)$/.exec(line);
  if (refused) records.push({ kind: refused[2] as RequestKind, job: refused[1], ok: false, refused: true, reason: refused[3], line });
  return records;
}

/**
 * Starts the daemon on `spool`; returns { reportFor(kind, job), stop() }. reportFor resolves
 * with the daemon's own record of that request, or undefined for daemons that report nothing.
 */
export async function startDaemon(kind: DaemonKind, root: string, spool: string, logFile?: string): Promise<Daemon> {
  const ckptDaemon = (engine: string): string[] => [
    process.execPath, join(root, 'bin/ckpt-daemon'), '--spool-dir', spool, '--engine', engine, '--image-key', join(spool, '..', 'image-key', 'image.key'),
  ];
  const argv: string[] = {
    restart: ckptDaemon('restart'),
    fake: ['bash', join(root, 'test/helpers/fake-daemon.sh'), spool],
    'ckpt-daemon': ckptDaemon('criu'),
  }[kind];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const records = new Map<string, DaemonRecord>();
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    readyResolve = resolve;
  });
  const waiters = new Map<string, (record: DaemonRecord) => void>();
  const keep = (record: DaemonRecord): void => {
    const key = `${record.kind}:${record.job}`;
    records.set(key, record);
    waiters.get(key)?.(record);
  };
  let stderr = '';
  let stderrPartial = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (logFile) {
      try {
        appendFileSync(logFile, chunk);
      } catch {
        // the sandbox is being removed
      }
    }
    stderr = (stderr + chunk.toString()).slice(-4000);
    stderrPartial += chunk.toString();
    let newline;
    while ((newline = stderrPartial.indexOf('\n')) >= 0) {
      const line = stderrPartial.slice(0, newline);
      stderrPartial = stderrPartial.slice(newline + 1);
      const said = readLogLine(line);
      if (said === 'ready') readyResolve();
      for (const record of said === 'ready' ? [] : said) keep(record);
    }
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (kind === 'fake') {
    // It has no ready line: give it a moment to set up its watch, then check it lives.
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (child.exitCode !== null) throw new Error(`${kind} daemon exited at once: ${stderr}`);
  } else {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`ckpt-daemon (${kind}) did not say it serves ${spool} within 20 s: ${stderr}`)), 20_000);
    });
    try {
      await Promise.race([ready, late, exited.then(() => Promise.reject(new Error(`ckpt-daemon (${kind}) exited at once: ${stderr}`)))]);
    } finally {
      clearTimeout(timer);
    }
  }
  const reports = kind !== 'fake';
  return {
    kind,
    pid: child.pid as number,
    get stderr() {
      return stderr;
    },
    /** The daemon's record { durationMs, ok } of a request, waiting up to timeoutMs; undefined for a daemon that reports nothing. */
    reportFor(requestKind, job, timeoutMs = 10_000) {
      if (!reports) return Promise.resolve(undefined);
      const key = `${requestKind}:${job}`;
      if (records.has(key)) return Promise.resolve(records.get(key));
      return new Promise<DaemonRecord | undefined>((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(key);
          resolve(undefined);
        }, timeoutMs);
        waiters.set(key, (record) => {
          clearTimeout(timer);
          waiters.delete(key);
          resolve(record);
        });
      });
    },
    /** Stops the daemon (its process group) and waits, up to 5 s, for it to exit. */
    async stop() {
      try {
        process.kill(-(child.pid as number), 'SIGTERM');
      } catch {
        return;
      }
      const timer = new Promise((resolve) => setTimeout(resolve, 5000, 'timeout'));
      if ((await Promise.race([exited, timer])) === 'timeout') {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          // gone
        }
      }
    },
  };
}

/** The daemon dropped a request without serving it (it logs "refused J.kind: why"). */
export class DaemonRefused extends Error {
  constructor(readonly record: DaemonRecord) {
    super(`the daemon refused ${record.job}.${record.kind}: ${record.reason}`);
  }
}

/** Resolves never, or rejects with DaemonRefused once the daemon says it refused the request. */
export function refusal(daemon: Daemon, kind: RequestKind, job: string, timeoutMs?: number): Promise<never> {
  const refused = new Promise<never>((_resolve, reject) => {
    daemon.reportFor(kind, job, timeoutMs).then((record) => {
      if (record?.refused) reject(new DaemonRefused(record));
    });
  });
  refused.catch(() => undefined); // a race that already ended must not see an unhandled rejection
  return refused;
}

/**
 * The daemon's time for a request, subtracted from the job-side figures: from the request file
 * appearing in the spool to checkpoint_ok (or the pidfile) appearing, both seen by the bench's
 * inotify — so the daemon's pick-up and queueing count as daemon time, not job time. Its own
 * report (which may start later, when it begins serving) stands in when nothing was observed.
 */
export function daemonTime(report: DaemonRecord | undefined, requestAt: number | undefined, doneAt: number | undefined): number | undefined {
  if (requestAt !== undefined && doneAt !== undefined) return doneAt - requestAt;
  return report && report.ok !== false ? report.durationMs : undefined;
}

/** What the daemon itself says the request took (undefined for daemons that say nothing). */
export function reportedTime(report: DaemonRecord | undefined): number | undefined {
  return report && report.ok !== false ? report.durationMs : undefined;
}
