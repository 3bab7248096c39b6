/**
 * OAR 2.5 as measured on a real cluster:
 *  - the checkpoint signal goes to ONE process, the job's `bash -c "<command>"`: ckpt-run must
 *    be that process (a plain command is exec'd by bash; a script must `exec ckpt-run …`);
 *  - exit 99 resubmits only a job that ran more than 60 s;
 *  - a resubmitted job gets a new OAR_JOB_ID but keeps OAR_ARRAY_ID/OAR_ARRAY_INDEX;
 *  - the job's environment has OAR_JOB_WALLTIME_SECONDS, but not the --checkpoint delay;
 *  - every checkpoint signal has a CHECKPOINT event (oarstat -J -f -j ID) naming who asked:
 *    "User oar (sarko)" at walltime - N, "User oar (metasched)" when a besteffort job's
 *    resources are needed (preemption: OAR kills it at its first scheduling pass N s or more after
 *    the first such event, up to 60 s later on a quiet cluster, and resubmits
 *    a besteffort+idempotent one), "User NAME" for oardel --checkpoint.
 */
import { notExecWarning, querySchedulerCommand, walltimeEndsAt, type SchedulerAdapter, type SchedulerContext } from '../scheduler.js';
import type { StopFacts } from '../stop-reason.js';
import { dumpedJobCgroups, jobCgroups, oarJobUser } from './cgroups.js';

/** 60 s is OAR's rule; 2 s of margin for clock granularity between OAR's checks. */
export const OAR_MIN_RUNTIME_SEC = 62;

function detectOar(env: NodeJS.ProcessEnv, ppid: number): SchedulerContext | undefined {
  const jobId = env.OAR_JOB_ID;
  if (!jobId) return undefined;
  const warning = notExecWarning('OAR', ppid);
  const arrayId = env.OAR_ARRAY_ID ?? jobId;
  const arrayIndex = env.OAR_ARRAY_INDEX ?? '1';
  return {
    name: 'OAR',
    jobId,
    runId: `oar-${arrayId}-${arrayIndex}`,
    minRuntimeSec: OAR_MIN_RUNTIME_SEC,
    walltimeEndsAt: walltimeEndsAt(Number(env.OAR_JOB_WALLTIME_SECONDS)),
    warnings: warning ? [warning] : [],
    stopFacts: () => oarJobStopFacts(jobId),
    stopFactsOf: oarJobStopFacts,
  };
}

const oarJobStopFacts = async (jobId: string): Promise<StopFacts> => oarStopFacts(await querySchedulerCommand(['oarstat', '-J', '-f', '-j', jobId]));

interface OarEvent {
  type?: string;
  description?: string;
  date?: number;
  event_id?: number;
}

/** What `oarstat -J -f -j ID` (TEXT) says of the job's stop: who asked for its latest checkpoint, and whether it is besteffort. */
export function oarStopFacts(text: string | undefined): StopFacts {
  let job: { types?: unknown; events?: unknown } | undefined;
  try {
    job = Object.values(JSON.parse(text ?? '') as Record<string, { types?: unknown; events?: unknown }>)[0];
  } catch {
    return {};
  }
  if (!job || typeof job !== 'object') return {};
  const types = Array.isArray(job.types) ? job.types : [];
  const events = (Array.isArray(job.events) ? (job.events as OarEvent[]) : []).filter((event) => event?.type === 'CHECKPOINT');
  const latest = events.sort((a, b) => (a.date ?? 0) - (b.date ?? 0) || (a.event_id ?? 0) - (b.event_id ?? 0)).at(-1)?.description ?? '';
  const said = /^User oar \(metasched\)/.test(latest) ? 'preemption' : /^User oar \(sarko\)/.test(latest) ? 'walltime' : /^User \S+ requested/.test(latest) ? 'manual' : undefined;
  return { said, preemptible: types.includes('besteffort') };
}

export const OAR: SchedulerAdapter = {
  name: 'OAR',
  detect: detectOar,
  node: {
    /**
     * OAR names a job's cgroups <user>_<job id>: with a "_" in the job id, "alice" + "b_7" reads
     * as the cpuset of "alice_b"'s job 7, so such a job id is in doubt wherever a cpuset ends with it.
     */
    jobOwner(jobId, cgroupRoot) {
      const user = oarJobUser(jobId, cgroupRoot);
      if (user === undefined) return undefined;
      return jobId.includes('_') ? { user, doubt: `job id ${jobId} has a "_": OAR's cpuset ${user}_${jobId} may be another user's job` } : { user };
    },
    jobCgroups,
    dumpedJobCgroups,
  },
};
