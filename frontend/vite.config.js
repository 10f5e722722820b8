import { fileURLToPath, URL } from 'node:url'

import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// Flask serves the built app: index.html for / and for every non-/api path (deep links),
// and the hashed files under /assets/. In development, /api goes to the local web process.
export default defineConfig({
  // Every component uses <script setup>: Vue's Options API support is left out of the bundle.
  plugins: [vue({ features: { optionsAPI: false } })],
  resolve: {
    alias: {
      '@': fileURLToPath(new URL('./src', import.meta.url)),
    },
  },
  build: {
    outDir: '../backend/static',
    emptyOutDir: true,
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8000',
    },
  },
})
