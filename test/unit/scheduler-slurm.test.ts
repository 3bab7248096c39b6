/** What ckpt-run takes from a Slurm job's environment (the values a real Slurm 22.05 sets). */
import { describe, expect, it } from 'vitest';
import { detectSlurm, slurmEndTime } from '../../src/scheduler/slurm/slurm.js';

describe('detectSlurm', () => {
  it('is not Slurm without SLURM_JOB_ID', () => {
    expect(detectSlurm({}, process.ppid)).toBeUndefined();
  });

  it('a requeued job keeps its id: the restart count tells its runs apart, the run key stays; it requeues itself', () => {
    const first = detectSlurm({ SLURM_JOB_ID: '12' }, process.ppid);
    const requeued = detectSlurm({ SLURM_JOB_ID: '12', SLURM_RESTART_COUNT: '1' }, process.ppid);
    expect(first).toMatchObject({ name: 'Slurm', jobId: 'slurm-12-0', runId: 'slurm-12', minRuntimeSec: 0, requeueCommand: ['scontrol', 'requeue', '12'] });
    expect(requeued).toMatchObject({ jobId: 'slurm-12-1', runId: 'slurm-12' });
    expect(first?.walltimeEndsAt).toBeUndefined(); // Slurm 22.05 does not tell the job its end time
  });

  it('an array task: the run key is the array and the task', () => {
    const task = detectSlurm({ SLURM_JOB_ID: '31', SLURM_ARRAY_JOB_ID: '30', SLURM_ARRAY_TASK_ID: '1' }, process.ppid);
    expect(task).toMatchObject({ jobId: 'slurm-31-0', runId: 'slurm-30-1' });
  });
});

describe('slurmEndTime', () => {
  it("reads the job's EndTime (local time, as scontrol prints it); none without a time limit or an answer", () => {
    const text = 'JobId=12 JobName=x JobState=RUNNING RunTime=00:00:03 TimeLimit=00:02:00 StartTime=2026-12-06T16:20:00 EndTime=2026-12-06T16:22:00 Deadline=N/A';
    expect(slurmEndTime(text)).toBe(new Date(2026, 11, 6, 16, 22, 0).getTime());
    expect(slurmEndTime('JobId=12 TimeLimit=UNLIMITED EndTime=Unknown')).toBeUndefined();
    expect(slurmEndTime(undefined)).toBeUndefined();
  });
});
