import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Two cores: interop and crash tests run real processes; keep parallelism modest.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 300_000,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    // Starts a PostgreSQL cluster only when test/fleet files are selected.
    globalSetup: ['./test/fleet/pg-global-setup.ts'],
  },
});
