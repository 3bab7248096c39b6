import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Real-part suites share the node (CRIU, OAR, the spool dir): one file at a time.
    fileParallelism: false,
    // CKPT_RUN_TEST_STRESS=N: N busy loops beside the run, as on a shared node.
    globalSetup: ['test/helpers/stress-setup.ts'],
  },
});
