import js from '@eslint/js'
import pluginVue from 'eslint-plugin-vue'
import skipFormatting from '@vue/eslint-config-prettier/skip-formatting'
import globals from 'globals'

export default [
  {
    name: 'app/files-to-lint',
    files: ['**/*.{js,mjs,vue}'],
  },
  {
    name: 'app/files-to-ignore',
    ignores: ['**/node_modules/**', '**/dist/**', '**/coverage/**'],
  },
  js.configs.recommended,
  ...pluginVue.configs['flat/recommended'],
  {
    name: 'app/browser',
    languageOptions: {
      globals: { ...globals.browser },
    },
    rules: {
      // `const { dropped, ...rest } = worker` is how a field is left out of a copy.
      'no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    name: 'app/node-config',
    files: ['*.config.js'],
    languageOptions: {
      globals: { ...globals.node },
    },
  },
  skipFormatting,
]
