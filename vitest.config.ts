import { defineConfig } from 'vitest/config';

// The run is split into lanes that share nothing, each lane one file at a time. scripts/test-all.sh
// runs the lanes side by side, a vitest per lane (`--project LANE`: a single vitest runs its
// one-file-at-a-time projects one after the other). On a 2-core node the scheduler suites mostly
// wait for OAR's and Slurm's passes and walltimes, so the lanes side by side take about half the
// 46 minutes of one lane.
//  - schedulers: every suite that drives the local OAR or Slurm cluster, whose jobs reach the
//    node's one daemon on the default spool (only one can serve it), and the integration suites
//    (fake daemons on their own spools) to even the lanes out;
//  - node: the other real-part suites (real CRIU, each its own daemon on its own spool). Both MPI
//    suites are here: Open MPI gives its ranks a pseudo-terminal and CRIU restores it at the same
//    index, so two MPI suites side by side could take each other's index. The light ones (own
//    spool, no MPI, small dumps) run in the schedulers lane instead, to even the lanes out: under
//    CKPT_RUN_TEST_STRESS=2 the node lane took 2295 s and the schedulers lane 1741 s. The big
//    dumps stay in this lane, one after another: lazy restore's 1 GB dumps beside zdtm's batch
//    made the disk so busy that its 152-process dump kept it frozen 111 s (stress run of 29fc39d);
//  - unit: no process, no file outside a temporary folder.
const SCHEDULER_SUITES = ['oar', 'preemption-oar', 'preemption-slurm', 'self-timed', 'slurm', 'app-engine']
  .map((name) => `test/e2e/${name}.e2e.test.ts`);
const BALANCING_SUITES = ['forking-job', 'interval-late-daemon', 'security-folders', 'security-images', 'security-jobs', 'security-requests', 'security-targets']
  .map((name) => `test/e2e/${name}.e2e.test.ts`);

const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // CKPT_RUN_TEST_STRESS=N: N busy loops beside the run, as on a shared node (test-all.sh starts
    // them itself, once for all its lanes).
    globalSetup: ['test/helpers/stress-setup.ts'],
    projects: [
      { test: { ...shared, name: 'schedulers', include: [...SCHEDULER_SUITES, ...BALANCING_SUITES, 'test/integration/**/*.test.ts'], fileParallelism: false } },
      { test: { ...shared, name: 'node', include: ['test/e2e/**/*.test.ts'], exclude: [...SCHEDULER_SUITES, ...BALANCING_SUITES], fileParallelism: false } },
      { test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'] } },
    ],
  },
});
