/**
 * `tsx bench/profile-layers.ts PROFILE.cpuprofile [.bench/stage-worker.js]`: a stage worker's CPU profile (taken with
 * `BENCH_MINIFY=0 BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench:stage:plain`) as self time by layer of
 * the record path. Each sample goes to the layer of the innermost frame on its stack that belongs to one (the
 * bundle's module is read from esbuild's `// path` comments, so the bundle must not be minified); samples in none go
 * to V8's own entries (garbage collector, idle, program) or to "other".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The layers, in the order a frame is tested against them: the first whose pattern its module or name matches. */
const LAYERS: Array<[string, RegExp]> = [
  ['decode + guard (decodeText, RecordGuard)', /src\/core\/guard/],
  ['csv-parse', /csv-parse/],
  ['reject lines (csv-stringify)', /csv-stringify|rejectLine/],
  ['openCsv records iterator', /src\/core\/csv\.ts/],
  ['boundary scan, plan (ranges)', /src\/core\/ranges|stage-plan/],
  ['mapping, validation, dates', /src\/core\/(mapping|dates)|luxon/],
  ['JSON encoding (staged-record)', /staged-record/],
  ['keys (packKey, KeyPartitions, settle)', /duplicates|partitions/],
  ['chunk writer', /chunk-writer/],
  ['decryption (openpgp)', /openpgp|src\/core\/pgp/],
  ['record loop (judge, route)', /stage-range|src\/steps\/stage\.ts|stage-finish/],
  ['S3 requests (AWS SDK, http)', /@aws-sdk|@smithy|_http|aws\/s3/],
  ['hashing', /crypto\/hash/],
];

function main() {
  const [profileFile, bundleFile = join(__dirname, '..', '.bench', 'stage-worker.js')] = process.argv.slice(2) as [string, string | undefined];
  const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
  const starts: Array<[number, string]> = [];
  readFileSync(bundleFile, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const module = /^\/\/ (\S+\.[cm]?[jt]s)$/.exec(line)?.[1];
      if (module) starts.push([i, module]);
    });
  const moduleAt = (line: number): string => {
    let [lo, hi, found] = [0, starts.length - 1, '?'];
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]![0] <= line) [found, lo] = [starts[mid]![1], mid + 1];
      else hi = mid - 1;
    }
    return found;
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + delta);
    total += delta;
  });
  const layers = new Map<string, number>();
  for (const [id, time] of self) {
    let layer: string | undefined;
    for (let at: number | undefined = id; at !== undefined && !layer; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      const where = frame.url.endsWith('.js') && frame.url.includes('stage-worker') ? moduleAt(frame.lineNumber) : `${frame.url} ${frame.functionName}`;
      layer = LAYERS.find(([, pattern]) => pattern.test(where) || pattern.test(frame.functionName))?.[0];
    }
    const leaf = byId.get(id)!.callFrame.functionName;
    layer ??= leaf.startsWith('(') ? leaf : 'other (streams, promises, node)';
    layers.set(layer, (layers.get(layer) ?? 0) + time);
  }
  console.log(`${profileFile}: ${(total / 1e6).toFixed(2)} s sampled`);
  for (const [layer, time] of [...layers].sort((a, b) => b[1] - a[1])) {
    console.log(`${(time / 1e3).toFixed(0).padStart(8)} ms ${((100 * time) / total).toFixed(1).padStart(5)}%  ${layer}`);
  }
}
main();
