/**
 * `@marcbachmann/cel-js` declares its types only under package.json "exports", which this project's `node`
 * module resolution does not read; this points TypeScript at the same declarations.
 */
declare module '@marcbachmann/cel-js' {
  export * from '@marcbachmann/cel-js/lib/index';
}
