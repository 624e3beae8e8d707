// @ts-check
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', 'eslint.config.js', 'runs/**', '.cluster/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      'no-restricted-syntax': [
        'error',
        { selector: 'CatchClause > BlockStatement[body.length=0]', message: 'No empty catch.' },
      ],
    },
  },
  {
    files: ['src/raft/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'setImmediate', 'performance'],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'The Raft core has no clock: time is a tick.' },
        { object: 'Math', property: 'random', message: 'The Raft core uses the injected seeded Rng.' },
      ],
      'no-restricted-imports': ['error', { patterns: ['node:*', '../shared/*', '../storage/*', '../kv/*', '../node/*', '../transport/*', '../protocol/*', '../server/*', '../client/*', '../cli/*'] }],
    },
  },
  // The install-time scripts run before the TypeScript is built (npm's postinstall): plain Node modules, linted without type information.
  { files: ['scripts/**/*.mjs'], ...tseslint.configs.disableTypeChecked, languageOptions: { sourceType: 'module', parserOptions: { projectService: false } } },
  // The dashboard is plain browser JavaScript served as it is (no build step): linted without type information.
  { files: ['dashboard/**/*.js'], ...tseslint.configs.disableTypeChecked, languageOptions: { sourceType: 'script', parserOptions: { projectService: false } } },
  // Imports point one way (../shared/DESIGN.md): raft < shared < storage, kv, transport, protocol < node < server;
  // the client needs only the protocol, shared and the request model (kv/types.ts); the cli uses the client and
  // starts the server (a dynamic import, which this rule does not see) from a NodeConfig.
  layer('src/shared', ['storage', 'kv', 'watch', 'transport', 'protocol', 'node', 'server', 'client', 'cli']),
  layer('src/storage', ['kv', 'watch', 'transport', 'protocol', 'node', 'server', 'client', 'cli']),
  layer('src/kv', ['storage', 'watch', 'transport', 'protocol', 'node', 'server', 'client', 'cli']),
  layer('src/watch', ['storage', 'transport', 'protocol', 'node', 'server', 'client', 'cli']),
  layer('src/transport', ['storage', 'kv', 'watch', 'node', 'server', 'client', 'cli']),
  layer('src/protocol', ['storage', 'kv', 'watch', 'transport', 'node', 'server', 'client', 'cli']),
  layer('src/node', ['protocol', 'server', 'client', 'cli']),
  layer('src/server', ['storage', 'client', 'cli']),
  layer('src/client', ['storage', 'transport', 'node', 'server', 'cli', 'kv', 'watch'], ['../kv/types.js']),
  layer('src/cli', ['storage', 'transport', 'protocol', 'server', 'kv', 'node'], ['../kv/types.js', '../node/config.js']),
);

/** A folder that may not import from the `forbidden` folders (except the `allowed` files). */
function layer(folder, forbidden, allowed = []) {
  return {
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [...forbidden.map((f) => `../${f}/*`), ...allowed.map((a) => `!${a}`)],
              message: `${folder} may not import from ${forbidden.join(', ')} (the layers, ../shared/DESIGN.md)`,
            },
          ],
        },
      ],
    },
  };
}
