// The conformance run of `npm run conformance` (scripts/conformance.mjs): the settings of
// the default run, for the files the default run leaves out.
import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    ...base.test,
    include: ['test/conformance/**/*.test.ts'],
    exclude: configDefaults.exclude,
  },
});
