import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `@pushdial/sdk` is this package's source, so that the README's quick start runs as written.
export default defineConfig({
  resolve: { alias: { '@pushdial/sdk': fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The end-to-end files share one server and organization: run them one after another.
    fileParallelism: false,
  },
});
