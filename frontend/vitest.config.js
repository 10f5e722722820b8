import { fileURLToPath } from 'node:url'

import { configDefaults, defineConfig, mergeConfig } from 'vitest/config'
import viteConfig from './vite.config.js'

// Pure logic (lib/, stores/, api/) runs under Node; anything that mounts components or
// needs a document runs under jsdom, which takes seconds per file to start.
const DOM_SPECS = ['src/components/**/*.spec.js', 'src/views/**/*.spec.js']

export default mergeConfig(
  viteConfig,
  defineConfig({
    test: {
      root: fileURLToPath(new URL('./', import.meta.url)),
      clearMocks: true,
      restoreMocks: true,
      unstubGlobals: true,
      projects: [
        {
          extends: true,
          test: {
            name: 'unit',
            environment: 'node',
            include: ['src/**/__tests__/*.spec.js'],
            exclude: [...configDefaults.exclude, ...DOM_SPECS],
          },
        },
        {
          extends: true,
          test: { name: 'dom', environment: 'jsdom', include: DOM_SPECS },
        },
      ],
    },
  }),
)
