import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/conformance judges a board process given on the command line: npm run conformance.
    exclude: [...configDefaults.exclude, 'test/conformance/**'],
    // Integration tests start real redis-server processes and virtual boards; run files
    // in separate processes, two at a time (the machine has two cores).
    pool: 'forks',
    maxWorkers: 2,
    // Generous: `npm run test:loaded` runs the suite with every core busy. Timeouts only catch
    // hangs; tests assert no speeds (those are the benches').
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
