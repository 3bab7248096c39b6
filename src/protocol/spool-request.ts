import { join } from 'node:path';

/**
 * The node daemon's spool protocol, as spoken by the clusters' public bash daemon:
 *   <spool>/<job-id>.checkpoint   "PID\nDIR\n"  dump the tree rooted at PID into DIR/checkpoint/
 *   <spool>/<job-id>.resume       "DIR\n"       restore DIR/checkpoint/, write its pidfile
 *                                 "JOBPID\nDIR\n" the same, the tree held on the job's life
 *                                               (ckpt-daemon's lease, daemon/job-leases.ts)
 * The public daemon reads the PID with `head -1` and DIR with `tail -1`, so both formats
 * stay strictly line-based with a trailing newline (and it reads a resume's DIR as before).
 */
/** Where the clusters' daemon reads requests. */
export const DEFAULT_SPOOL_DIR = '/var/lib/checkpoints';

export type RequestKind = 'checkpoint' | 'resume';

export interface CheckpointRequest {
  kind: 'checkpoint';
  jobId: string;
  pid: number;
  dir: string;
}

export interface ResumeRequest {
  kind: 'resume';
  jobId: string;
  dir: string;
  /** The job's process (ckpt-run): the restored tree is killed once it is gone. */
  jobPid?: number;
}

export type SpoolRequest = CheckpointRequest | ResumeRequest;

/**
 * Who asked: the owner of a request file, as the node's user database knows them (the daemon
 * looks them up, src/daemon/requester.ts). A dump or restore runs on their behalf, with no
 * power beyond theirs.
 */
export interface Requester {
  uid: number;
  /** Primary group. */
  gid: number;
  /** Every group the user belongs to (primary included). */
  gids: number[];
  name: string;
}

/** The largest request a daemon accepts: a PID and a path, with room to spare. */
export const MAX_REQUEST_BYTES = 8192;

/** Job ids become file names in a world-writable directory: no separators, no dot files. */
const JOB_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function isValidJobId(jobId: string): boolean {
  return JOB_ID_PATTERN.test(jobId);
}

export function requestPath(spoolDir: string, kind: RequestKind, jobId: string): string {
  return join(spoolDir, `${jobId}.${kind}`);
}

/** Splits a spool file name into its job id and kind; undefined for anything else. */
export function parseRequestName(name: string): { jobId: string; kind: RequestKind } | undefined {
  const match = /^(.+)\.(checkpoint|resume)$/.exec(name);
  if (!match || !isValidJobId(match[1])) return undefined;
  return { jobId: match[1], kind: match[2] as RequestKind };
}

export function formatRequest(request: SpoolRequest): string {
  const pid = request.kind === 'checkpoint' ? request.pid : request.jobPid;
  return pid === undefined ? `${request.dir}\n` : `${pid}\n${request.dir}\n`;
}

export class MalformedRequestError extends Error {}

/** Parses a request body; throws MalformedRequestError with the reason for anything off. */
export function parseRequest(kind: RequestKind, jobId: string, body: string): SpoolRequest {
  if (body.includes('\0')) throw new MalformedRequestError('binary content');
  if (!body.endsWith('\n')) throw new MalformedRequestError('no final newline (half-written?)');
  const lines = body.slice(0, -1).split('\n');
  const dir = lines[lines.length - 1];
  if (!dir.startsWith('/') || dir.includes('\n')) {
    throw new MalformedRequestError(`directory ${JSON.stringify(dir)} is not an absolute path`);
  }
  if (kind === 'resume' && lines.length === 1) return { kind, jobId, dir };
  if (lines.length !== 2) throw new MalformedRequestError(`expected ${kind === 'resume' ? '1 or 2' : 2} lines, got ${lines.length}`);
  if (!/^[1-9][0-9]{0,9}$/.test(lines[0])) {
    throw new MalformedRequestError(`PID ${JSON.stringify(lines[0])} is not a number`);
  }
  const pid = Number(lines[0]);
  return kind === 'resume' ? { kind, jobId, dir, jobPid: pid } : { kind, jobId, pid, dir };
}
