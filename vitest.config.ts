import { defineConfig } from 'vitest/config';

/**
 * Two groups, one after the other. First every file but the VM ones, two at a time: they wait
 * on HTTP and DynamoDB Local far more than they compute, and they share one local stack (each
 * test uses its own names and projects). Then the VM files, one at a time and alone: QEMU's TCG
 * guests are CPU-bound, and their boots and BMC waits must not compete with other files.
 */
const VM = ['test/agent/vm-*.test.ts'];

const shared = {
  globalSetup: ['./test/support/global-setup.ts'],
  testTimeout: 60_000,
  hookTimeout: 120_000,
  env: {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_EC2_METADATA_DISABLED: 'true',
    SLIPWAY_LOG_LEVEL: 'warn',
  },
};

export default defineConfig({
  test: {
    projects: [
      { test: { ...shared, name: 'stack', include: ['test/**/*.test.ts'], exclude: VM, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { test: { ...shared, name: 'vm', include: VM, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
