import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The floors, lowest first (README "Layout"). A folder imports only the floors below it
// and itself; `operator/`, `matchmaker/`, `node-agent/` and `portal/` never import each other. Tests may also use
// the development folder's harness (dev/) and build configs through cli/config.ts (so a
// default is never restated in a test). Runtime code may not import a package that
// is only a devDependency: the image is built with `npm prune --omit=dev`.
const ALL = [
  'api',
  'kube',
  'operator',
  'matchmaker',
  'node-agent',
  'portal',
  'cli',
  'dev',
  'e2e',
  'bench',
  'hack',
  'deploy',
];
const DEV_ONLY_PACKAGES = [
  '@peculiar/x509',
  'reflect-metadata',
  'fast-check',
  'json-schema-to-typescript',
  'playwright-core',
];
const floors = {
  api: [],
  kube: ['api'],
  operator: ['api', 'kube'],
  matchmaker: ['api', 'kube'],
  'node-agent': ['api', 'kube'],
  portal: ['api', 'kube'],
  cli: ['api', 'kube', 'operator', 'matchmaker', 'node-agent', 'portal'],
};
const forbidden = (folder, allowed) =>
  ALL.filter((f) => f !== folder && !allowed.includes(f)).map((f) => ({
    group: [`**/${f}/**`],
    message: `${folder}/ may import only ${[...allowed, 'generated'].join(', ')} and itself (${f}/ is not below it)`,
  }));
const boundaries = Object.entries(floors).flatMap(([folder, allowed]) => [
  {
    files: [`${folder}/**/*.ts`],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...forbidden(folder, allowed),
            ...DEV_ONLY_PACKAGES.map((p) => ({
              group: [p, `${p}/**`],
              message: `${p} is a devDependency; runtime code cannot import it`,
            })),
          ],
        },
      ],
    },
  },
  {
    files: [`${folder}/**/*.test.ts`],
    rules: {
      'no-restricted-imports': ['error', { patterns: forbidden(folder, [...allowed, 'cli', 'dev']) }],
    },
  },
]);

export default tseslint.config(
  { ignores: ['dist/', '.cache/', 'node_modules/', 'coverage/', 'generated/', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...boundaries,
);
