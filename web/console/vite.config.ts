import { fileURLToPath } from 'node:url';
import { defineConfig, type ProxyOptions } from 'vite';

// The api that `npm run dev` proxies to. It checks `Origin` on state-changing requests
// against its public URL, so the proxy rewrites Origin to the api's own.
const API = process.env.PUSHDIAL_API ?? 'http://127.0.0.1:8080';

const sdk = fileURLToPath(new URL('../../sdk/ts/src/index.ts', import.meta.url));

const proxied: ProxyOptions = {
  target: API,
  changeOrigin: true,
  configure(proxy) {
    proxy.on('proxyReq', (req) => {
      if (req.getHeader('origin')) req.setHeader('origin', new URL(API).origin);
    });
  },
};

export default defineConfig({
  base: '/console/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  resolve: {
    // The SDK is bundled from source (no build of sdk/ts needed): its imports resolve
    // from this package's node_modules.
    alias: { '@pushdial/sdk': sdk },
    dedupe: ['openapi-fetch', 'preact'],
  },
  build: {
    outDir: '../dist/console',
    emptyOutDir: true,
    target: 'es2020',
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    fs: { allow: ['.', '../../sdk/ts'] },
    proxy: {
      '/v1': proxied,
      '/auth': proxied,
      '/agent': proxied,
      '/widget': proxied,
      '/widget.js': proxied,
    },
  },
});
