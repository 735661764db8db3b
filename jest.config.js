// Host tests run in parallel; tests that boot the emulated board are named
// *.vm.test.ts and are run one at a time by scripts/run-tests.js (each boot
// takes both cores).
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/agent'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
  },
  testTimeout: 30_000,
};
