/**
 * The program the CRIU figures checkpoint (restore modes, periodic checkpoints): it holds MIB
 * mebibytes of random bytes (incompressible) and their SHA-256, and on SIGUSR1 hashes all its
 * memory again and says whether it matches, a line each ("check ok" / "check BAD"): a dump or
 * restore that lost or damaged a page shows. Started as root, detached, its output O_APPEND
 * (criu restores it whatever its size has become); the images are root's.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Requester } from '../../src/protocol/spool-request.js';
import { waitUntil } from '../watch.js';

const PROGRAM = `
const { createHash, randomFillSync } = require('node:crypto');
const memory = Buffer.allocUnsafeSlow(Number(process.argv[2]) * 1024 * 1024);
for (let at = 0; at < memory.length; at += 1 << 30) randomFillSync(memory, at, Math.min(1 << 30, memory.length - at));
const hash = () => {
  const sha = createHash('sha256');
  for (let at = 0; at < memory.length; at += 1 << 30) sha.update(memory.subarray(at, at + (1 << 30)));
  return sha.digest('hex');
};
const expected = hash();
process.on('SIGUSR1', () => process.stdout.write(hash() === expected ? 'check ok\\n' : 'check BAD\\n'));
process.stdout.write('ready\\n');
setInterval(() => undefined, 1 << 30);
`;

/** The bench dumps and restores its own program as root: the images are root's. */
export const ROOT_REQUESTER: Requester = { uid: 0, gid: 0, gids: [0], name: 'root' };

/** The program's output so far, a line each. */
const outputLines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []);
const checks = (file: string): string[] => outputLines(file).filter((line) => line.startsWith('check'));

export interface MemoryProgram {
  pid: number;
  /** Its output file. */
  out: string;
}

/** Starts the program in DIR and waits (bounded) until its memory is filled. */
export async function startMemoryProgram(dir: string, mib: number): Promise<MemoryProgram> {
  const out = join(dir, 'out.log');
  writeFileSync(join(dir, 'program.cjs'), PROGRAM);
  writeFileSync(out, '');
  const holder = spawn(process.execPath, [join(dir, 'program.cjs'), String(mib)], { detached: true, stdio: ['ignore', openSync(out, 'a'), openSync(out, 'a')], cwd: dir });
  holder.unref();
  if (holder.pid === undefined) throw new Error(`could not start the ${mib} MiB program`);
  await waitUntil(() => outputLines(out).includes('ready'), { timeoutMs: 120_000, what: `the ${mib} MiB program to be ready` });
  return { pid: holder.pid, out };
}

/** Has the program PID (writing to OUT) check its memory; true when it is intact. */
export async function memoryIntact(pid: number, out: string): Promise<boolean> {
  const before = checks(out).length;
  process.kill(pid, 'SIGUSR1');
  await waitUntil(() => checks(out).length > before, { timeoutMs: 60_000, what: "the program's checksum" });
  return checks(out)[before] === 'check ok';
}
