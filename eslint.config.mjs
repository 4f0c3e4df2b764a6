// One lint setup, type-aware: async batch sending is where a forgotten promise loses data.
import tseslint from 'typescript-eslint';
import boundaryRules from './eslint.boundaries.cjs';

export default tseslint.config(
  { ignores: ['node_modules/', 'cdk.out/', 'out/', 'coverage/', '.bench/', 'test/.tmp/', 'jest.config.js', 'eslint.config.mjs', 'eslint.boundaries.cjs', 'bin/badges-import.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  // Arrows point down: which layer may import which (see eslint.boundaries.cjs).
  ...boundaryRules.boundaries,
  // Test doubles are often async functions that answer at once.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/require-await': 'off' } },
);
