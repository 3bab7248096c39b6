/** `ckpt-run simulate` on real CRIU (root): the demo path a new user runs first. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../helpers/poll.js';
import { counted, COUNTER, liveProcessesIn, makeSandbox, runSimulate, summaryOf } from '../helpers/launcher-harness.js';
import { criuProbe, realPartAvailable } from '../helpers/real-parts.js';

describe.runIf(realPartAvailable('simulate on real CRIU', criuProbe))('ckpt-run simulate --engine criu', () => {
  it('K real checkpoints then completion: every line once, state kept, the exit code', async () => {
    const { workdir } = makeSandbox('ckpt-simcriu-');
    const sim = runSimulate(workdir, ['--engine', 'criu', '--every', '1', '--', COUNTER, '40', '0.1', '7']);
    await sim.expectExit(7, 90_000);
    const summary = summaryOf(workdir);
    expect(summary.engine).toBe('criu');
    expect(summary.checkpoints).toBeGreaterThanOrEqual(2);
    expect(summary.cycles.slice(0, -1).every((c: { dumpMs?: number }) => typeof c.dumpMs === 'number')).toBe(true);
    expect(summary.cycles.slice(1).every((c: { restoreMs?: number }) => typeof c.restoreMs === 'number')).toBe(true);
    // Restored, not restarted: the count goes on where it stopped, each number once.
    expect(counted(sim.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    console.log(sim.stdout.slice(sim.stdout.indexOf('Simulation summary')));
  });

  it('--walltime without --checkpoint: a scheduler that sends no signal; each job checkpoints itself in time, every line once, the exit code', async () => {
    const { workdir } = makeSandbox('ckpt-simself-');
    // 40 s of work, 25 s of walltime per job, no signal ever: only the self-timed checkpoints save the run.
    const sim = runSimulate(workdir, ['--engine', 'criu', '--walltime', '25', '--', COUNTER, '40', '1', '7']);
    await sim.expectExit(7, 150_000);
    const summary = summaryOf(workdir);
    expect(summary.checkpoints).toBeGreaterThanOrEqual(2);
    expect(summary.cycles.slice(0, -1).every((c: { endedBy: string }) => c.endedBy === 'checkpoint (exit 99)')).toBe(true);
    expect(counted(sim.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(sim.stderr).toMatch(/final checkpoint planned at \d\d:\d\d:\d\d \(in \d+ s\), \d+ s before the walltime: [\d.]+ MB at [\d.]+ MB\/s assumed/);
    // Every job plans (a counter's dumps are too small and quick to measure a throughput: final-plan.test.ts).
    expect(sim.stderr.match(/final checkpoint planned at/g)?.length).toBeGreaterThanOrEqual(summary.cycles.length);
    expect(sim.stderr).toMatch(/no checkpoint signal from the scheduler \d+ s before the walltime: checkpointing now, as planned/);
    expect(sim.stderr).not.toMatch(/checkpoint signal received/);
    console.log(sim.stdout.slice(sim.stdout.indexOf('Simulation summary')));
  }, 180_000);

  it('a --checkpoint too short for a program of 1.6 GB: the job checkpoints early by its own plan, re-planned as the program grew; the run survives, every line once', async () => {
    const { workdir } = makeSandbox('ckpt-simbig-');
    // 1.6 GB filled at its start (a dump of some 5 s here), then 60 lines, one every 0.5 s.
    const big = join(workdir, 'big.mjs');
    writeFileSync(big, "const held = Buffer.alloc(1.6e9, 1);\nlet i = 0;\nconst tick = setInterval(() => { console.log(++i); if (i === 60) { clearInterval(tick); process.exitCode = held[0] + 6; } }, 500);\n");
    const sim = runSimulate(workdir, ['--engine', 'criu', '--walltime', '45', '--checkpoint', '2', '--', process.execPath, big]);
    await sim.expectExit(7, 240_000);
    const summary = summaryOf(workdir);
    expect(summary.cycles[0]).toMatchObject({ endedBy: 'checkpoint (exit 99)' });
    expect(summary.cycles[0].imageBytes).toBeGreaterThan(1.5e9);
    // The plan follows the program as it grows: its memory is sampled every 5 s, and the fill of
    // 1.6 GB may still be under way at a sample on a loaded node (this VM faults pages in at
    // ~270 MB/s): a plan for more than 1 GB is the growth seen, whatever the sample caught.
    expect(sim.stderr).toMatch(/new plan: final checkpoint planned at \d\d:\d\d:\d\d \(in \d+ s\), \d+ s before the walltime: [1-9]\d\d\d\.\d MB/);
    expect(sim.stderr).toMatch(/no checkpoint signal from the scheduler \d+ s before the walltime: checkpointing now, as planned \(the dump of [1-9]\d\d\d\.\d MB is estimated at \d+ s\)/);
    // The second job plans from the throughput the first one's dump showed.
    expect(sim.stderr).toMatch(/final checkpoint planned at .* MB\/s measured/);
    expect(counted(sim.stdout)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    console.log(sim.stdout.slice(sim.stdout.indexOf('Simulation summary')));
  }, 300_000);

  it('--interval and --crash-at: the crashed job is followed by one that resumes the last periodic checkpoint; the output file holds every line once', async () => {
    const { workdir } = makeSandbox('ckpt-simcrash-');
    // The crash 3 s after the first periodic checkpoint is asked (at 4 s), a second before the
    // next is (4 s after the first completes): on a loaded node a dump takes a second or more, and
    // a crash during the second dump left nothing to roll back (that dump completed for the
    // killed job). Between the two, the program prints lines that the resume must roll back.
    const sim = runSimulate(workdir, ['--engine', 'criu', '--manual', '--interval', '4', '--crash-at', '7', '--', COUNTER, '60', '0.15', '7']);
    await sim.expectExit(7, 120_000);
    const summary = summaryOf(workdir);
    expect(summary.cycles.map((c: { endedBy: string }) => c.endedBy)).toEqual(['crashed: the whole job killed (SIGKILL)', 'program exited (code 7)']);
    expect(summary.cycles[0].dumps).toBeGreaterThanOrEqual(1);
    expect(typeof summary.cycles[1].restoreMs).toBe('number');
    // The run's own output file, rolled back to the checkpoint before the resumed program redid it.
    expect(counted(readFileSync(join(workdir, '.ckpt-run/simulate/stdout.log'), 'utf8'))).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(sim.stderr).toMatch(/is rolled back: \d+ bytes of .*stdout\.log/);
    console.log(sim.stdout.slice(sim.stdout.indexOf('Simulation summary')));
  });

  it('stops after --max-cycles', async () => {
    const { workdir } = makeSandbox('ckpt-simcriu-');
    const sim = runSimulate(workdir, ['--engine', 'criu', '--every', '0.5', '--max-cycles', '2', '--', COUNTER, '1000', '0.05']);
    await sim.expectExit(0, 60_000);
    expect(summaryOf(workdir).cycles).toHaveLength(2);
    expect(summaryOf(workdir).verdict).toMatch(/stopped after 2 cycles/);
  });

  it('a program failing on its own ends the simulation with its code', async () => {
    const { workdir } = makeSandbox('ckpt-simcriu-');
    const sim = runSimulate(workdir, ['--engine', 'criu', '--every', '5', '--', COUNTER, '2', '0.01', '3']);
    await sim.expectExit(3, 30_000);
    expect(summaryOf(workdir).cycles).toHaveLength(1);
  });

  it('a restored program whose next dump outlasts the walltime: cut at the deadline the job gave, killed with its job, not resubmitted, nothing left running', async () => {
    const { workdir } = makeSandbox('ckpt-simcriu-');
    // Small in the first job; once restored, it grows to 3 GB (filled, so it must be dumped)
    // when the test says so, after the first checkpoint: a dump of 3 GB takes ~3 s here and the
    // checkpoint signal leaves 2 s. (Growing at a fixed line raced with this VM's slow page
    // faults: ~270 MB/s, so a 3 GB fill could outlast the job and leave a small dump.) The fill
    // has the restored job's walltime, 43 s before its signal: it took 11 s alone and more than
    // 18 s beside 2 busy loops and the other lane (stress run of 988200b, walltime 20 s then);
    // the first job is checkpointed by hand, at once, not at its walltime.
    const grower = join(workdir, 'grower.mjs');
    writeFileSync(
      grower,
      "import { existsSync } from 'node:fs';\nlet i = 0; const held = [];\n" +
        "setInterval(() => { console.log(++i); if (!held.length && existsSync('grow')) { held.push(Buffer.alloc(3 * 2 ** 30, 1)); console.log('grown'); } }, 100);\n",
    );
    // The scheduler's signal alone (--no-self-timed): the job's own plan would checkpoint the grown program in time.
    const sim = runSimulate(workdir, ['--engine', 'criu', '--walltime', '45', '--checkpoint', '2', '--no-self-timed', '--', process.execPath, grower]);
    await sim.waitFor((p) => /^3$/m.test(p.stdout) || p.child.exitCode !== null, 'the program\'s third line', 30_000);
    sim.child.kill('SIGUSR2');
    await sim.waitFor((p) => /checkpoint complete in/.test(p.stderr) || p.child.exitCode !== null, 'the first checkpoint', 60_000);
    writeFileSync(join(workdir, 'grow'), '');
    await sim.expectExit(137, 120_000);
    expect(sim.stdout, 'the restored program filled its 3 GB before its walltime').toMatch(/^grown$/m);
    const summary = summaryOf(workdir);
    expect(summary.cycles).toHaveLength(2);
    expect(summary.cycles[0]).toMatchObject({ endedBy: 'checkpoint (exit 99)' });
    expect(summary.cycles[1]).toMatchObject({ endedBy: 'killed at its walltime (not resubmitted)', exitCode: 137 });
    expect(typeof summary.cycles[1].restoreMs).toBe('number');
    expect(summary.verdict).toMatch(/^cycle 2 was still running at its walltime \(45 s\)/);
    // The restored program, which is not under ckpt-run, was killed too.
    await waitUntil(() => liveProcessesIn(workdir).length === 0, () => `the restored program (${liveProcessesIn(workdir).join(', ')}) to be killed`, 5_000);
    console.log(sim.stdout.slice(sim.stdout.indexOf('Simulation summary')));
  }, 180_000);

  it('a dump CRIU refuses: the reason is shown, the program keeps running and finishes, and the dry run fails with 13', async () => {
    const { workdir } = makeSandbox('ckpt-simcriu-');
    // An open deleted file larger than CRIU's ghost limit (1 MB) cannot be dumped.
    const script = `head -c 3000000 /dev/zero > big; exec 3<big; rm big; exec ${COUNTER} 30 0.1 0`;
    const sim = runSimulate(workdir, ['--engine', 'criu', '--every', '1', '--', 'sh', '-c', script]);
    await sim.expectExit(13, 60_000);
    const summary = summaryOf(workdir);
    expect(summary.checkpoints).toBe(0);
    expect(summary.ok).toBe(false);
    expect(sim.stderr).toMatch(/checkpoint failed: .+/);
    expect(summary.verdict).toMatch(/^\d+ checkpoints? failed \(dump of job .* failed: .+\); the program then finished with exit code 0 after 0 checkpoints\./);
    expect(sim.stdout).toMatch(/^FAILED: /m);
    expect(counted(sim.stdout)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    console.log(`dump failure shown to the user: ${sim.stderr.match(/checkpoint failed: .*/)?.[0]}`);
  });
});
