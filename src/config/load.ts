import { readFileSync } from 'node:fs';
import { ConfigError, UnknownDataflowError } from '../errors';
import { type Config, type Dataflow, configSchema } from './schema';

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
}

/** Validates a parsed configuration document, reporting every problem at once with its JSON path. */
export function parseConfig(document: unknown): Config {
  const result = configSchema.safeParse(document, { error: (issue) => (issue.input === undefined ? 'is required' : undefined) });
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${formatPath(issue.path) || '(root)'}: ${issue.message}`));
  }
  return result.data;
}

/** Reads and validates a configuration file. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([`${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`]);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${file}: is not valid JSON (${(error as Error).message})`]);
  }
  return parseConfig(document);
}

/** Picks a dataflow by name; the name may be omitted when the configuration has exactly one. */
export function selectDataflow(config: Config, name?: string): Dataflow {
  if (name === undefined) {
    if (config.dataflows.length === 1) return config.dataflows[0]!;
    throw new UnknownDataflowError(`The configuration has ${config.dataflows.length} dataflows; name one of: ${config.dataflows.map((d) => d.name).join(', ')}`);
  }
  const flow = config.dataflows.find((d) => d.name === name);
  if (!flow) throw new UnknownDataflowError(`No dataflow named "${name}"; the configuration has: ${config.dataflows.map((d) => d.name).join(', ')}`);
  return flow;
}

/** The dataflow whose source prefix and file pattern take an inbox key, if any. */
export function dataflowForKey(config: Config, key: string): Dataflow | undefined {
  return config.dataflows.find((d) => key.startsWith(d.source.prefix) && new RegExp(d.source.filePattern).test(key.slice(key.lastIndexOf('/') + 1)));
}
