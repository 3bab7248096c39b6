#!/usr/bin/env node
/**
 * The bench's checkpoint daemon: the spool protocol of issue #3 with a "restart" engine (no
 * CRIU: it records the tree root's command line, environment, cwd and output files, kills the
 * tree, and on resume starts that command again), event-driven (inotify on the spool dir, with
 * a slow safety scan) so that its own latency stays out of the job-side figures, and reporting
 * each request's timestamps on stdout as JSON lines:
 *   {"kind":"checkpoint","job":J,"dir":D,"seenAt":T0,"doneAt":T1,"ok":true}
 * seenAt = the complete request was read; doneAt = checkpoint_ok (or pidfile) renamed in place.
 * All times use bench/clock.mjs's clock (wall-clock ms, µs resolution).
 *
 *   node bench/bench-daemon.mjs SPOOL_DIR
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, utimesSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { now, sleep } from './clock.mjs';
import { cmdline, isRunning, readLink, statFields, treeOf } from './procfs.mjs';

const spool = process.argv[2];
if (!spool) {
  process.stderr.write('usage: bench-daemon.mjs SPOOL_DIR\n');
  process.exit(2);
}

const HEARTBEAT = join(spool, 'ckpt-daemon.heartbeat');
const inFlight = new Set();

function report(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function writeAtomic(path, content) {
  const temp = join(path, '..', `.${path.split('/').pop()}.${process.pid}.tmp`);
  writeFileSync(temp, content);
  renameSync(temp, path);
}

/** Parses a request body; undefined while it is incomplete (the baseline writes it in place). */
function parse(kind, body) {
  if (!body.endsWith('\n')) return undefined;
  const lines = body.slice(0, -1).split('\n');
  if (kind === 'checkpoint') {
    if (lines.length !== 2 || !/^[1-9]\d*$/.test(lines[0]) || !lines[1].startsWith('/')) return undefined;
    return { pid: Number(lines[0]), dir: lines[1] };
  }
  if (lines.length !== 1 || !lines[0].startsWith('/')) return undefined;
  return { dir: lines[0] };
}

function consider(name) {
  const match = /^([^.][^/]*)\.(checkpoint|resume)$/.exec(name ?? '');
  if (!match || inFlight.has(name)) return;
  const path = join(spool, name);
  let body;
  try {
    body = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  const request = parse(match[2], body);
  if (!request) return;
  const seenAt = now();
  rmSync(path, { force: true });
  inFlight.add(name);
  const work = match[2] === 'checkpoint' ? dump(request) : restore(request);
  work.then(
    (result) => report({ kind: match[2], job: match[1], dir: request.dir, seenAt, doneAt: now(), ok: true, ...result }),
    (error) => report({ kind: match[2], job: match[1], dir: request.dir, seenAt, doneAt: now(), ok: false, error: error.message }),
  ).finally(() => inFlight.delete(name));
}

/** Stops the whole tree first (no fork escapes, as CRIU's freeze), then kills it. */
function killTree(pid) {
  let members = [];
  for (let pass = 0; pass < 5; pass += 1) {
    const found = treeOf(pid);
    const fresh = found.filter((member) => !members.includes(member));
    for (const member of fresh) {
      try {
        process.kill(member, 'SIGSTOP');
      } catch {
        // gone
      }
    }
    members = [...new Set([...members, ...found])];
    if (fresh.length === 0) break;
  }
  for (const member of members) {
    try {
      process.kill(member, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

async function dump({ pid, dir }) {
  if (!isRunning(pid)) throw new Error(`PID ${pid} is not running`);
  const images = join(dir, 'checkpoint');
  mkdirSync(images, { recursive: true });
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  const image = {
    argv: cmdline(pid),
    env: Object.fromEntries(environ.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)])),
    cwd: readLink(`/proc/${pid}/cwd`),
    stdout: readLink(`/proc/${pid}/fd/1`),
    stderr: readLink(`/proc/${pid}/fd/2`),
  };
  writeAtomic(join(images, 'restart.json'), JSON.stringify(image));
  const startTime = statFields(pid)?.[19];
  killTree(pid);
  const deadline = now() + 5000;
  while (isRunning(pid) && statFields(pid)?.[19] === startTime) {
    if (now() > deadline) throw new Error(`PID ${pid} survived SIGKILL for 5 s`);
    await sleep(1);
  }
  rmSync(join(dir, 'checkpoint_ok'), { force: true });
  writeAtomic(join(dir, 'checkpoint_ok'), '');
  return { pid };
}

function openOutput(path) {
  return openSync(path && path.startsWith('/') && !path.startsWith('/proc/') ? path : '/dev/null', 'a');
}

async function restore({ dir }) {
  const image = JSON.parse(readFileSync(join(dir, 'checkpoint', 'restart.json'), 'utf8'));
  const out = openOutput(image.stdout);
  const err = openOutput(image.stderr);
  const child = spawn(image.argv[0], image.argv.slice(1), {
    cwd: image.cwd,
    env: image.env,
    detached: true,
    stdio: ['ignore', out, err],
  });
  try {
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  child.unref();
  writeAtomic(join(dir, 'checkpoint', 'pidfile'), `${child.pid}\n`);
  return { pid: child.pid };
}

function heartbeat() {
  try {
    const t = new Date();
    utimesSync(HEARTBEAT, t, t);
  } catch {
    writeFileSync(HEARTBEAT, '');
  }
}

function scan() {
  for (const name of readdirSync(spool)) consider(name);
}

watch(spool, (_event, name) => consider(name));
heartbeat();
setInterval(heartbeat, 2000);
setInterval(scan, 250);
scan();
report({ kind: 'ready', pid: process.pid, at: now() });
process.on('SIGTERM', () => process.exit(0));
