/**
 * bin/ckpt-run --engine app with real processes and signals, no daemon at all (the spool dir
 * does not even exist): a program that saves itself on the signal and exits with the agreed
 * code, resumed from its own state; one that ignores the signal; one that ends while saving;
 * the dry run; a run that another engine checkpointed (the fake daemon makes that one).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import { treeOf } from '../../src/proc/processes.js';
import { killAll } from '../helpers/listed-processes.js';
import { CKPT_RUN, COUNTER, counted, liveProcessesIn, makeSandbox, ROOT, runCkpt, runSimulate, startFakeDaemon, summaryOf, type Sandbox } from '../helpers/launcher-harness.js';

const SAVER = join(ROOT, 'examples/saving-counter.sh');
const NO_SPOOL = ['--spool-dir', '/nonexistent/spool'];
const runDir = (sandbox: Sandbox) => join(sandbox.workdir, '.ckpt-run', 'default');
const state = (sandbox: Sandbox) => JSON.parse(readFileSync(join(runDir(sandbox), 'state.json'), 'utf8'));

/** A job of the app engine; SIGNALAFTER: the checkpoint signal once that many lines are out. */
async function job(sandbox: Sandbox, jobId: string, program: string[], signalAfter?: number, options: string[] = []) {
  const proc = runCkpt(sandbox, [...NO_SPOOL, '--engine', 'app', '--job-id', jobId, ...options, '--', ...program]);
  if (signalAfter !== undefined) {
    await proc.waitFor((p) => counted(p.stdout).length >= signalAfter, `${signalAfter} lines of job ${jobId}`);
    proc.child.kill('SIGUSR2');
  }
  return { proc, code: await proc.exitCode() };
}

const stops: Array<() => void> = [];
afterEach(() => {
  while (stops.length) stops.pop()?.();
});

describe('ckpt-run --engine app', () => {
  it('saves on the signal, exits 99, resumes from its own state across three jobs: every line once, its own exit code', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const counter = [SAVER, '40', '0.05', '7'];
    const first = await job(sandbox, '1', counter, 5);
    expect(first.code).toBe(ExitCode.Resubmit);
    expect(first.proc.stderr).toMatch(/asking the program to save: SIGUSR2 to its process group \(PID \d+\); waiting up to 60 s/);
    expect(first.proc.stderr).toMatch(/saving-counter: from 1 \(restarts: 0, previous stop: none\)/);
    expect(first.proc.stderr).toMatch(/saving-counter: saved at \d+ \(manual\)/);
    expect(first.proc.stderr).toMatch(/the program saved its state and exited [\d.]+ m?s after the signal; exit 99/);
    expect(state(sandbox)).toMatchObject({ status: 'checkpointed', restarts: 1 });
    expect(existsSync(join(runDir(sandbox), 'exit_status'))).toBe(false);
    expect(execFileSync(process.execPath, [CKPT_RUN, 'status', sandbox.workdir], { encoding: 'utf8' })).toMatch(
      /^default: checkpointed: the next job resumes the last checkpoint\n(.*\n)*  checkpoint: \S+, saved by the program itself \(--engine app\), its state in the run folder\n/,
    );

    const second = await job(sandbox, '2', counter, counted(first.proc.stdout).length + 5);
    expect(second.code).toBe(ExitCode.Resubmit);
    expect(second.proc.stderr).toMatch(/resuming the checkpoint in .*starting the program again: it resumes from the state it saved/s);
    expect(second.proc.stderr).toMatch(/saving-counter: from \d+ \(restarts: 1, previous stop: manual\)/);

    const third = await job(sandbox, '3', counter);
    expect(third.code).toBe(7);
    expect(third.proc.stderr).toMatch(/restarts: 2/);
    const all = [first, second, third].flatMap((j) => counted(j.proc.stdout));
    expect(all).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
    // Each job relayed only its own lines: the run's output file has them all, once.
    expect(counted(readFileSync(join(runDir(sandbox), 'stdout.log'), 'utf8'))).toEqual(all);
    expect(state(sandbox)).toMatchObject({ status: 'finished', exitCode: 7, restarts: 2 });
    expect(state(sandbox).history.map((record: { outcome: string }) => record.outcome)).toEqual(['checkpointed', 'checkpointed', 'finished']);
  });

  it('a program that ignores the signal is killed after --app-grace and reported: exit 16, never 99, nothing left running', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const deaf = join(sandbox.workdir, 'deaf.sh');
    writeFileSync(deaf, "#!/bin/sh\ntrap '' USR2\ni=0\nwhile :; do i=$((i+1)); echo $i; sleep 0.05; done\n", { mode: 0o755 });
    const started = Date.now();
    const { proc, code } = await job(sandbox, '1', [deaf], 3, ['--app-grace', '1']);
    expect(code).toBe(ExitCode.AppTimeout);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(proc.stderr).toMatch(/error: the program did not exit within 1 s of SIGUSR2 \(bound: --app-grace\): killed; not exiting 99/);
    expect(liveProcessesIn(sandbox.workdir)).toEqual([]);
    expect(state(sandbox).status).toBe('running'); // not finished: a resubmission would start it again
    expect(existsSync(join(runDir(sandbox), 'checkpoint_ok'))).toBe(false);
  });

  it('a program that exits with another code while saving: its own end, passed through, the run finished', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const quitter = join(sandbox.workdir, 'quitter.sh');
    writeFileSync(quitter, "#!/bin/sh\ntrap 'echo giving up; exit 3' USR2\nwhile :; do echo 1; sleep 0.05 & wait $!; done\n", { mode: 0o755 });
    const { proc, code } = await job(sandbox, '1', [quitter], 3);
    expect(code).toBe(3);
    expect(proc.stdout).toMatch(/giving up/);
    expect(proc.stderr).toMatch(/program exited with code 3 after the save signal: not the agreed code \(--app-saved-code\), so this is its own end/);
    expect(state(sandbox)).toMatchObject({ status: 'finished', exitCode: 3 });
  });

  it('a program that does not catch the save signal dies of it: a failure (its code), never 99, and the run is not finished', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const { proc, code } = await job(sandbox, '1', ['sh', '-c', 'while :; do echo 1; sleep 0.05; done'], 3);
    expect(code).toBe(128 + 12);
    expect(proc.stderr).toMatch(/the program died of SIGUSR2, the save signal \(exit 140\): it does not catch it/);
    expect(state(sandbox).status).toBe('running');
  });

  it('--app-any-exit-saved: an exit 0 after the signal (GROMACS) counts as saved; --app-signal chooses the signal', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const gmx = join(sandbox.workdir, 'gmx-like.sh');
    writeFileSync(gmx, "#!/bin/sh\ntrap 'echo checkpoint written; exit 0' TERM\nwhile :; do echo 1; sleep 0.05 & wait $!; done\n", { mode: 0o755 });
    const { proc, code } = await job(sandbox, '1', [gmx], 3, ['--app-signal', 'TERM', '--app-any-exit-saved']);
    expect(code).toBe(ExitCode.Resubmit);
    expect(proc.stderr).toMatch(/asking the program to save: SIGTERM to its process group/);
    expect(state(sandbox).status).toBe('checkpointed');
  });

  it('--interval with --app-periodic-signal: periodic saves while it runs; after a crash the next job resumes from the last one', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const counter = [SAVER, '60', '0.1', '7'];
    const options = ['--interval', '1', '--app-periodic-signal', 'USR1'];
    const first = runCkpt(sandbox, [...NO_SPOOL, '--engine', 'app', '--job-id', '1', ...options, '--', ...counter]);
    await first.waitFor((p) => (p.stderr.match(/saving-counter: periodic save at \d+/g) ?? []).length >= 2, 'two periodic saves');
    expect(first.stderr).toMatch(/periodic save: SIGUSR1 to the program's process group \(PID \d+\); it runs on/);
    // The crash: the whole job at once.
    const victims = treeOf(first.child.pid as number);
    killAll(victims, 'SIGKILL');
    await first.exitCode();
    const lastSave = Number([...first.stderr.matchAll(/periodic save at (\d+)/g)].at(-1)?.[1]);

    const second = await job(sandbox, '2', counter, undefined, options);
    expect(second.code).toBe(7);
    // The resume after the crash is a restart: the first one of the run (no exit 99 counted one).
    expect(second.proc.stderr).toMatch(new RegExp(`saving-counter: from ${lastSave} \\(restarts: 1`));
    // The crashed job recorded nothing of what it relayed: the second relays the run's output from
    // its start, then the program goes on from its last save (the numbers after it come twice).
    expect(counted(second.proc.stdout).slice(-(60 - lastSave + 1))).toEqual(Array.from({ length: 60 - lastSave + 1 }, (_, k) => lastSave + k));
    expect(counted(first.stdout).slice(0, lastSave - 1)).toEqual(Array.from({ length: lastSave - 1 }, (_, k) => k + 1));
  });

  it('--interval with --engine app needs --app-periodic-signal (no default: a program that does not catch it dies of it)', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const proc = runCkpt(sandbox, [...NO_SPOOL, '--engine', 'app', '--job-id', '1', '--interval', '5', '--', SAVER, '3']);
    await proc.expectExit(ExitCode.Usage);
    expect(proc.stderr).toMatch(/--interval with --engine app needs --app-periodic-signal/);
  });

  it('simulate --engine app: a real resume without root, CRIU or daemon (the README demo); status tells the run', async () => {
    const { workdir } = makeSandbox('ckpt-app-sim-');
    const sim = runSimulate(workdir, ['--engine', 'app', '--every', '1', '--', SAVER, '20', '0.2', '7']);
    expect(await sim.exitCode(60_000), `simulate's output:\n${sim.stdout}\n${sim.stderr}`).toBe(7);
    const summary = summaryOf(workdir);
    expect(summary.engine).toBe('app');
    expect(summary.checkpoints).toBeGreaterThanOrEqual(2);
    expect(summary.cycles).toHaveLength(summary.checkpoints + 1);
    expect(sim.stdout).toMatch(/OK: the program finished with exit code 7 after \d+ checkpoints/);
    expect(sim.stderr).not.toMatch(/NOTICE: real CRIU is not usable/);
    // Resumed from its own state: every number once, across the cycles.
    expect(counted(sim.stdout)).toEqual(Array.from({ length: 20 }, (_, k) => k + 1));
    const status = execFileSync(process.execPath, [CKPT_RUN, 'status', workdir], { encoding: 'utf8' });
    expect(status).toMatch(new RegExp(`simulate: finished, exit code 7\\n.*\\n  restarts:   ${summary.checkpoints}\\n`));
  });

  it('a run resumes with the engine that checkpointed it: the other one says which, exit 2, the checkpoint untouched', async () => {
    const saved = makeSandbox('ckpt-app-');
    expect((await job(saved, '1', [SAVER, '40', '0.05', '0'], 3)).code).toBe(ExitCode.Resubmit);
    const criu = runCkpt(saved, ['--job-id', '2', '--', SAVER, '40', '0.05', '0']);
    await criu.expectExit(ExitCode.Usage);
    expect(criu.stderr).toMatch(/error: the checkpoint in \S+ was made by the program itself \(--engine app\): resume it with --engine app \(or start the run afresh: rm -r \S+\)\n$/);
    expect(state(saved).status).toBe('checkpointed');

    const dumped = makeSandbox('ckpt-app-');
    const daemon = startFakeDaemon(dumped);
    stops.push(daemon.stop);
    const first = runCkpt(dumped, ['--job-id', '1', '--', COUNTER, '100', '0.05', '0']);
    await first.waitFor((p) => counted(p.stdout).length >= 3, 'three lines');
    first.child.kill('SIGUSR2');
    await first.expectExit(ExitCode.Resubmit);
    const app = runCkpt(dumped, ['--engine', 'app', '--job-id', '2', '--', COUNTER, '100', '0.05', '0']);
    await app.expectExit(ExitCode.Usage);
    expect(app.stderr).toMatch(/error: the checkpoint in \S+ was made by the node's checkpoint daemon \(--engine criu\): resume it with --engine criu/);
    expect(existsSync(join(runDir(dumped), 'checkpoint_ok'))).toBe(true);
  });

  it('bad --app-* options: one line naming the option and the fix, exit 2', async () => {
    const sandbox = makeSandbox('ckpt-app-');
    const without = runCkpt(sandbox, ['--job-id', '1', '--app-grace', '10', '--', SAVER]);
    await without.expectExit(ExitCode.Usage);
    expect(without.stderr).toBe('ckpt-run: error: --app-grace: only with --engine app (add it, or drop the option)\n');
    const both = runCkpt(sandbox, ['--engine', 'app', '--job-id', '1', '--app-saved-code', '0', '--app-any-exit-saved', '--', SAVER]);
    await both.expectExit(ExitCode.Usage);
    expect(both.stderr).toBe('ckpt-run: error: --app-saved-code and --app-any-exit-saved exclude each other: choose one\n');
    const tooBig = runCkpt(sandbox, ['--engine', 'app', '--job-id', '1', '--app-saved-code', '300', '--', SAVER]);
    await tooBig.expectExit(ExitCode.Usage);
    expect(tooBig.stderr).toBe('ckpt-run: error: --app-saved-code 300: an exit code is 0 to 255\n');
  });
});
