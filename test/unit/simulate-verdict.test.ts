/** The dry run's verdict: a failed checkpoint or restore fails the dry run, with its own exit code. */
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/base/exit-codes.js';
import type { CycleRecord } from '../../src/simulate/summary.js';
import { KILLED_AT_WALLTIME, verdict, type DaemonFailure, type VerdictInput } from '../../src/simulate/verdict.js';

const checkpointed = (jobId: string): CycleRecord => ({ jobId, runSec: 5, dumpMs: 300, imageBytes: 2 ** 20, exitCode: 99, endedBy: 'checkpoint (exit 99)', finished: false });
const finished = (jobId: string, exitCode = 0): CycleRecord => ({ jobId, runSec: 5, exitCode, endedBy: `program exited (code ${exitCode})`, finished: true });
const restoreFailed = (jobId: string): CycleRecord => ({ jobId, runSec: 1, exitCode: 4, endedBy: 'ckpt-run failed (exit 4: restore failed)', finished: false });

function input(cycles: CycleRecord[], failures: DaemonFailure[] = []): VerdictInput {
  return { engine: 'criu', command: ['lmp'], schedule: { kind: 'every', everySec: 5 }, maxCycles: 10, cycles, failures };
}

describe('simulate verdict', () => {
  it('every dump failed and the program finished: FAILED with exit code 13, the reason and what to do', () => {
    const summary = verdict(input([finished('j1')], [
      { kind: 'dump', jobId: 'j1', reason: 'Iptables configuration failed' },
      { kind: 'dump', jobId: 'j1', reason: 'Iptables configuration failed' },
    ]));
    expect(summary.ok).toBe(false);
    expect(summary.exitCode).toBe(ExitCode.DryRunFailed);
    expect(summary.exitCode).toBe(13);
    expect(summary.verdict).toMatch(/^2 checkpoints failed \(dump of job j1 failed: Iptables configuration failed; dump of job j1 failed: Iptables configuration failed\); the program then finished with exit code 0 after 0 checkpoints\./);
    expect(summary.verdict).toMatch(/fix what CRIU names .*or use --engine restart/);
    expect(summary.verdict).not.toMatch(/^OK|finished with exit code 0 after 0 checkpoints\.$/);
  });

  it('one failed dump among good ones still fails the dry run', () => {
    const summary = verdict(input([checkpointed('j1'), finished('j2', 7)], [{ kind: 'dump', jobId: 'j2', reason: 'x' }]));
    expect(summary).toMatchObject({ ok: false, exitCode: 13, checkpoints: 1 });
    expect(summary.verdict).toMatch(/^1 checkpoint failed \(dump of job j2 failed: x\); the program then finished with exit code 7 after 1 checkpoint\./);
  });

  it('a failed restore: FAILED with exit code 13, not the job\'s 4, and says the checkpoint will not restore on the cluster either', () => {
    const summary = verdict(input([checkpointed('j1'), restoreFailed('j2')], [{ kind: 'restore', jobId: 'j2', reason: 'inet: Can\'t bind inet socket (id 91): Address already in use' }]));
    expect(summary).toMatchObject({ ok: false, exitCode: 13 });
    expect(summary.verdict).toMatch(/^1 restore failed \(restore of job j2 failed: inet: Can't bind .*\); cycle 2 ended with: ckpt-run failed \(exit 4: restore failed\), after 1 checkpoint\./);
    expect(summary.verdict).toMatch(/will not restore on the cluster either/);
  });

  it('a dump that found the program gone in the job where it finished is no failure (the signal came as it ended)', () => {
    const gone = { kind: 'dump' as const, jobId: 'j2', reason: 'Unable to detach from 15550: No such process' };
    expect(verdict(input([checkpointed('j1'), finished('j2', 7)], [gone]))).toMatchObject({ ok: true, exitCode: 7 });
    // The daemon's words when the program had ended before the request reached it.
    expect(verdict(input([finished('j1')], [{ ...gone, jobId: 'j1', reason: 'no process 26944 on this node' }]))).toMatchObject({ ok: true, exitCode: 0 });
    // The same words in a job whose program did not finish are a failure.
    expect(verdict(input([checkpointed('j1'), finished('j2', 7)], [{ ...gone, jobId: 'j1' }]))).toMatchObject({ ok: false, exitCode: 13 });
  });

  it('no failure: the program\'s own exit code and OK', () => {
    const summary = verdict(input([checkpointed('j1'), checkpointed('j2'), finished('j3', 7)]));
    expect(summary).toMatchObject({ ok: true, exitCode: 7, checkpoints: 2, verdict: 'the program finished with exit code 7 after 2 checkpoints.' });
  });

  it('--max-cycles with no failure is OK with exit code 0', () => {
    const summary = verdict({ ...input([checkpointed('j1'), checkpointed('j2')]), maxCycles: 2 });
    expect(summary).toMatchObject({ ok: true, exitCode: 0 });
    expect(summary.verdict).toMatch(/^stopped after 2 cycles/);
  });

  it('counts read as words: one cycle, one checkpoint; never "1 checkpoints"', () => {
    const summary = verdict({ ...input([checkpointed('j1')]), maxCycles: 1 });
    expect(summary.verdict).toMatch(/^stopped after 1 cycle \(--max-cycles\): 1 checkpoint made; /);
    expect(verdict(input([checkpointed('j1'), finished('j2', 7)])).verdict).toBe('the program finished with exit code 7 after 1 checkpoint.');
  });

  it('a job killed at its walltime keeps its own verdict: the dump the kill cut off is its consequence', () => {
    const killed: CycleRecord = { jobId: 'j2', runSec: 4, exitCode: 137, endedBy: KILLED_AT_WALLTIME, finished: false };
    const summary = verdict({ ...input([checkpointed('j1'), killed], [{ kind: 'dump', jobId: 'j2', reason: '2 was killed by 9 unexpectedly' }]), schedule: { kind: 'walltime', walltimeSec: 4, checkpointSec: 1 } });
    expect(summary).toMatchObject({ ok: false, exitCode: 137 });
    expect(summary.verdict).toMatch(/^cycle 2 was still running at its walltime \(4 s\).* The daemon said: dump of job j2 failed: 2 was killed by 9 unexpectedly$/);
  });
});

describe('simulate verdict: resumes that left files unlike the checkpoint', () => {
  const resumed = (jobId: string, runSec: number, exitCode: number): CycleRecord => ({ ...finished(jobId, exitCode), runSec, restoreMs: 400 });

  it('an exit code 1 within seconds of a resume fails the dry run (exit 13) and says the images are kept', () => {
    const summary = verdict(input([checkpointed('j1'), resumed('j2', 0.8, 1)]));
    expect(summary).toMatchObject({ ok: false, exitCode: 13 });
    expect(summary.verdict).toMatch(/^the program ended with exit code 1 0\.8 s after job j2 resumed it, after 1 checkpoint: .*images are kept/);
  });

  it('a signal soon after the resume fails it too; a failure long after it, or a code of the program\'s own (0, 7) soon after it, does not', () => {
    expect(verdict(input([checkpointed('j1'), resumed('j2', 2, 139)]))).toMatchObject({ ok: false, exitCode: 13 });
    expect(verdict(input([checkpointed('j1'), resumed('j2', 300, 1)]))).toMatchObject({ ok: true, exitCode: 1 });
    expect(verdict(input([checkpointed('j1'), resumed('j2', 0.8, 0)]))).toMatchObject({ ok: true, exitCode: 0 });
    expect(verdict(input([checkpointed('j1'), resumed('j2', 0.8, 7)]))).toMatchObject({ ok: true, exitCode: 7 });
  });

  it('a resume with files it could not put back fails the dry run, naming them', () => {
    const summary = verdict(input([checkpointed('j1'), { ...resumed('j2', 30, 0), notRolledBack: '/w/summary.txt' }]));
    expect(summary).toMatchObject({ ok: false, exitCode: 13 });
    expect(summary.verdict).toMatch(/^job j2 resumed with files changed after its checkpoint .*: \/w\/summary\.txt; the program then finished with exit code 0/);
  });
});
