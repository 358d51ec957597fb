// One runner, three tiers (see README "Development"):
//   unit         pure functions, no I/O:                   **/*.test.ts
//   integration  one real kube-apiserver + etcd per file:  **/*.int.test.ts
//   e2e          several control planes and processes:     e2e/**/*.e2e.test.ts
// Select a tier with `--selectProjects unit|integration|e2e`.
const transform = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
};
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform,
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/.cache/'],
};
export default {
  reporters: ['default', '<rootDir>/hack/jest-summary-reporter.js'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/**/*.test.ts'],
      testPathIgnorePatterns: [
        ...common.testPathIgnorePatterns,
        '\\.int\\.test\\.ts$',
        '\\.e2e\\.test\\.ts$',
      ],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/**/*.int.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/dev/jest-slow-tests.ts'],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/**/*.e2e.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/dev/jest-slow-tests.ts'],
    },
  ],
};
