/**
 * Preemption on a REAL OAR 2.5.9 cluster (scripts/oar-local.sh, one node, two cores) with
 * ckpt-daemon on real CRIU: examples/oar-besteffort-job.sh (`-t besteffort -t idempotent
 * --checkpoint N`) runs a counter on the whole node; a normal job that needs the node makes
 * OAR's meta-scheduler send the besteffort job its checkpoint signal ("User oar (metasched)"),
 * and kill it at its first scheduling pass N s or more after the first one. Both ways OAR resubmits a besteffort+idempotent job are
 * tested, one after the other (each needs the whole node):
 *   a. the signal comes after the job ran 60 s: ckpt-run checkpoints and exits 99 within N s,
 *      OAR resubmits it (idempotent, exit 99; no BESTEFFORT_KILL);
 *   b. the signal comes early: ckpt-run checkpoints, then holds exit 99 for OAR's 60 s rule
 *      (--min-runtime), OAR kills it N s after the signal (BESTEFFORT_KILL: a scheduling pass
 *      then, see B) and resubmits it;
 *      the run record written when the checkpoint completed survives the kill.
 * Either way the resubmitted job (new id, same array id) starts once the normal job is done,
 * resumes the checkpoint, every line comes once, the program's own exit code ends it, and the
 * run record says the first job stopped for "preemption". About 5 minutes. Root only; in CI it
 * always runs.
 */
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted, readOr } from '../helpers/launcher-harness.js';
import { deleteActiveJobs, ensureOarUser, exitStatusOf, followChain, formatChain, oarJob, oarProbe, oarsub, startCluster, stopCluster, waitForState, type ClusterHandle, type OarJob, type OarUser } from '../helpers/oar-cluster.js';
import { prepareSchedulerNode, type SchedulerNode } from '../helpers/oar-node.js';
import { pollFor } from '../helpers/poll.js';
import { realPartAvailable } from '../helpers/real-parts.js';

const USER = 'ckptoar';
/** a: the preemptor comes once the besteffort job ran 65 s; N leaves ckpt-run time to exit 99 before OAR's kill. */
const A = { count: 100, code: 42, preemptAfterSec: 65, checkpoint: 60 };
/**
 * b: the preemptor comes 15 s in; OAR kills the job at its first scheduling pass N s or more
 * after its signal. Almighty runs the scheduler when a job is submitted or ends, else only every
 * 60 s: on this quiet cluster a second job, submitted N + 3 s after the signal, makes that pass
 * come before ckpt-run's 62 s are up, as the steady submissions of a busy cluster would.
 */
const B = { count: 60, code: 43, preemptAfterSec: 15, checkpoint: 10, nudge: true };
/** The normal job: the whole node for 15 s. */
const PREEMPTOR_SEC = 15;

/** A ckpt-run log line's time (ms), e.g. "ckpt-run: 2026-11-24T18:41:02.891Z checkpoint signal received". */
function loggedAt(stderr: string, what: RegExp): number | undefined {
  const stamp = stderr.split('\n').find((line) => what.test(line))?.match(/^ckpt-run: (\S+) /)?.[1];
  return stamp ? Date.parse(stamp) : undefined;
}

interface Preempted {
  dir: string;
  chain: OarJob[];
  preemptor: OarJob;
  stdout: string;
  stderr: string[];
  history: Array<{ jobId: string; mode: string; outcome?: string; reason?: string }>;
}

describe.runIf(realPartAvailable('ckpt-run preemption on a real OAR cluster', oarProbe))('preemption under a real OAR 2.5.9 (besteffort + idempotent) with ckpt-daemon on real CRIU', () => {
  let cluster: ClusterHandle | undefined;
  let user: OarUser;
  let node: SchedulerNode | undefined;
  let pkg: string;
  let base: string;

  beforeAll(async () => {
    cluster = startCluster();
    user = ensureOarUser(USER);
    node = await prepareSchedulerNode(user, 'oar-preempt-e2e');
    ({ pkg, base } = node);
  }, 600_000);

  afterAll(async () => {
    if (user) await deleteActiveJobs(user).catch((error) => console.warn(`oar preemption e2e: ${error}`));
    await node?.tearDown();
    if (cluster && !cluster.wasUp) stopCluster();
  }, 240_000);

  /** The besteffort job on the whole node, a normal job PREEMPTAFTERSEC into it, and the chain to its end. */
  async function preempt(name: string, spec: { count: number; code: number; preemptAfterSec: number; checkpoint: number; nudge?: boolean }): Promise<Preempted> {
    const dir = join(base, name);
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, user.uid, user.gid);
    const script = join(pkg, 'examples/oar-besteffort-job.sh');
    const counter = join(pkg, 'examples/counter.sh');
    // The example's directives, but for N and the program (oarsub's options come before the script's).
    const firstId = oarsub(user, dir, ['-t', 'besteffort', '-t', 'idempotent', '--checkpoint', String(spec.checkpoint), '-l', '/nodes=1,walltime=0:10:0', '-n', `preempt-${name}`, `${script} ${counter} ${spec.count} 1 ${spec.code}`]);
    const started = await waitForState(firstId, ['Running'], 60_000);
    await pollFor(() => (Date.now() / 1000 >= started.startTime + spec.preemptAfterSec ? true : undefined), `job ${firstId} to have run ${spec.preemptAfterSec} s`, (spec.preemptAfterSec + 30) * 1000);
    const preemptorId = oarsub(user, dir, ['-l', `/nodes=1,walltime=0:5:0`, '-n', `preemptor-${name}`, `sleep ${PREEMPTOR_SEC}`]);
    console.log(`[${name}] besteffort job ${firstId} started at ${started.startTime}; normal job ${preemptorId} submitted ${Math.round(Date.now() / 1000 - started.startTime)} s into it`);
    if (spec.nudge) {
      const signalledAt = await pollFor(
        async () => (await oarJob(firstId)).events.some((e) => e.type === 'CHECKPOINT') ? Date.now() : undefined,
        `OAR's CHECKPOINT event for job ${firstId}`,
        60_000,
        250,
      );
      await pollFor(() => (Date.now() >= signalledAt + (spec.checkpoint + 3) * 1000 ? true : undefined), `${spec.checkpoint + 3} s after OAR's signal`, (spec.checkpoint + 10) * 1000, 250);
      const nudgeId = oarsub(user, dir, ['-l', '/nodes=1,walltime=0:5:0', '-n', `nudge-${name}`, 'true']);
      console.log(`[${name}] job ${nudgeId} submitted ${spec.checkpoint + 3} s after OAR's signal: a scheduling pass`);
    }
    const chain = await followChain(firstId, { timeoutMs: 400_000 });
    const preemptor = await oarJob(preemptorId);
    const stderr = chain.map((job) => readOr(join(dir, job.stderrFile)));
    const stdout = chain.map((job) => readOr(join(dir, job.stdoutFile))).join('');
    const runId = `oar-${chain[0].arrayId}-1`;
    const history = JSON.parse(readFileSync(join(dir, '.ckpt-run', runId, 'state.json'), 'utf8')).history;
    console.log(
      `[${name}] ${formatChain(chain)}; normal job ${preemptor.id} ran ${preemptor.startTime}..${preemptor.stopTime}\n` +
        chain.map((job, k) => `  job ${job.id} events: ${job.events.map((e) => `${e.type}: ${e.description}`).join(' | ')}\n${stderr[k].replace(/^/gm, '    stderr| ')}`).join('\n'),
    );
    return { dir, chain, preemptor, stdout, stderr, history };
  }

  /** What both ways share: OAR's own preemption signal, a resubmission that waited for the normal job, every line once, the code, the reason. */
  function expectSurvived(run: Preempted, spec: { count: number; code: number }): void {
    const [first, last] = run.chain;
    expect(run.chain).toHaveLength(2);
    expect(first.events.filter((e) => e.type === 'CHECKPOINT').map((e) => e.description)[0]).toMatch(/^User oar \(metasched\) requested a checkpoint on the job \d+/);
    expect(first.events.map((e) => e.type)).toContain('RESUBMIT_JOB_AUTOMATICALLY');
    expect(last.resubmitJobId).toBe(first.id);
    expect(last.arrayId).toBe(first.arrayId);
    // The resubmitted job waited for the normal job to leave the node.
    expect(last.startTime).toBeGreaterThanOrEqual(run.preemptor.stopTime);
    expect(exitStatusOf(last)).toEqual({ code: spec.code, signal: 0 });
    expect(counted(run.stdout)).toEqual(Array.from({ length: spec.count }, (_, k) => k + 1));
    // OAR's word, said by the job if oarstat answered before its exit 99, else by the next job,
    // which asks about it (the exit waits for no oarstat): the record says preemption either way.
    const saidInTime = /this job stops for: preemption \(the scheduler says so\)/.test(run.stderr[0]);
    const saidNext = new RegExp(`job ${first.id} stopped for: preemption \\(asked now`).test(run.stderr[1]);
    expect(saidInTime || saidNext, run.stderr.join('\n---\n')).toBe(true);
    console.log(`[reason] OAR's answer came ${saidInTime ? 'before the exit 99' : "after the exit 99: the next job completed the record"}`);
    expect(run.stderr[0]).toMatch(/checkpoint complete in [\d.]+ m?s( \([^)]*\))?, program stopped/);
    expect(run.stderr[1]).toMatch(/program restored as PID \d+/);
    expect(run.history.map((job) => [job.jobId, job.mode, job.outcome, job.reason])).toEqual([
      [String(first.id), 'fresh', 'checkpointed', 'preemption'],
      [String(last.id), 'resume', 'finished', undefined],
    ]);
    const signalAt = loggedAt(run.stderr[0], /checkpoint signal received/) as number;
    const dumped = loggedAt(run.stderr[0], /checkpoint complete in/) as number;
    const restored = loggedAt(run.stderr[1], /program restored as PID/) as number;
    console.log(
      `[numbers] OAR's preemption signal -> checkpoint complete ${((dumped - signalAt) / 1000).toFixed(1)} s; -> resumed in job ${last.id} ${((restored - signalAt) / 1000).toFixed(1)} s ` +
        `(the normal job held the node ${run.preemptor.stopTime - run.preemptor.startTime} s); resubmitted job started ${last.startTime - run.preemptor.stopTime} s after the normal job ended`,
    );
  }

  it('a. signal after 60 s of job: checkpoint, exit 99 before OAR kills, resubmitted, resumed after the normal job; every line once, the exit code, reason preemption', async () => {
    const run = await preempt('a', A);
    expectSurvived(run, A);
    const [first] = run.chain;
    expect(exitStatusOf(first)).toEqual({ code: 99, signal: 0 });
    expect(first.events.map((e) => e.type)).not.toContain('BESTEFFORT_KILL');
  }, 600_000);

  it('b. signal early: checkpoint, exit 99 held for the 60 s rule, OAR kills the job N s after its signal and resubmits it; the same end', async () => {
    const run = await preempt('b', B);
    expectSurvived(run, B);
    const [first] = run.chain;
    expect(first.events.map((e) => e.type)).toContain('BESTEFFORT_KILL');
    expect(run.stderr[0]).toMatch(/before exit 99: the scheduler resubmits only jobs that ran more than 60 s/);
    expect(run.stderr[0]).not.toMatch(/exit 99 so that the job is resubmitted/);
  }, 600_000);
});
