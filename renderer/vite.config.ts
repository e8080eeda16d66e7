// Builds the UI into dist/renderer, which the service serves at `/` (and the Electron
// window loads from there). Asset names carry content hashes: the service caches them
// for good.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  plugins: [svelte()],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // Inline nothing: the Content-Security-Policy allows scripts from files only.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 800,
  },
});
