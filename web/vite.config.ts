// One multi-page build into the Python package's static folder (api/static), which the
// server serves under /static/ and the wheel ships. The output is committed, so the build
// must be byte-for-byte reproducible: no sourcemaps, no timestamps, no absolute paths
// (rollup names chunks and assets by content hash, relative to this folder).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/static/',
  publicDir: false,
  build: {
    outDir: '../api/static',
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: false,
    // One CSS file per page keeps the strict CSP simple (style-src 'self').
    cssCodeSplit: true,
    // Inline no asset as a data: URL except tiny ones; the CSP allows data: for img and font.
    assetsInlineLimit: 4096,
    // The modulepreload polyfill would be bundled; every browser we target has it.
    modulePreload: { polyfill: false },
    // GraphiQL is one big page (React, CodeMirror, graphql-js): about 1 MB, loaded only by
    // developers on /graphql. The workbench is cytoscape plus our code, about 480 kB.
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      // React libraries mark modules "use client" (a server-components hint); meaningless here.
      onwarn(warning, warn) {
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
      input: {
        app: resolve(here, 'app/index.html'),
        graphiql: resolve(here, 'graphiql/index.html'),
      },
    },
  },
});
