/** What both stage benchmarks share: the stage bundled as the Lambda is, and the node flags the stack gives it. */
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { BUNDLE_EXTERNALS, CJS_BUNDLE_SHIMS, stageNodeOptions } from '../lib/defaults';
import { loadConfig } from '../src/config/load';

/**
 * Bundles bench/stage-worker.ts (or another worker of bench/) with the stack's esbuild settings; BENCH_MINIFY=0 keeps
 * names (for profiles).
 */
export function buildStageWorker(dir: string, name = 'stage-worker'): string {
  const worker = join(dir, `${name}.js`);
  buildSync({
    entryPoints: [join(__dirname, `${name}.ts`)],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    minify: process.env.BENCH_MINIFY !== '0',
    keepNames: true,
    outfile: worker,
    logLevel: 'warning',
    // The SDK stays in (the runtime provides it in AWS; here nothing else would); ssh2's add-ons stay out.
    external: BUNDLE_EXTERNALS.filter((e) => e !== '@aws-sdk/*'),
    banner: { js: CJS_BUNDLE_SHIMS.banner },
    define: { ...CJS_BUNDLE_SHIMS.define },
  });
  return worker;
}

/**
 * The stage function's heap flags as the stack sets them for this configuration (its 1769 MB), plus BENCH_NODE_FLAGS
 * (e.g. "--cpu-prof"); BENCH_NODE_FLAGS=none runs the stage with V8's defaults instead.
 */
export function stageProcessFlags(configFile: string): string[] {
  if (process.env.BENCH_NODE_FLAGS === 'none') return [];
  const config = loadConfig(configFile);
  const deployed = stageNodeOptions(Math.max(...config.dataflows.map((d) => d.destination.recordsPerWorker)), 1769);
  return [...deployed.split(' '), ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
}
