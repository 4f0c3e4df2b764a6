import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { configSchema } from '../src/config/schema';

/** The README is the front door; the reference is in docs/. These checks keep the two navigable. */
const root = join(__dirname, '..');
const DOCS = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => join(root, 'docs', name));
const PAGES = [join(root, 'README.md'), ...DOCS];

/** GitHub's anchor for a heading: lower case, punctuation dropped (but `-` and `_`), spaces to `-`. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The anchors of a markdown page: its headings' slugs (outside code blocks). */
function anchorsOf(path: string): Set<string> {
  const anchors = new Set<string>();
  let inCode = false;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.startsWith('```')) inCode = !inCode;
    const heading = !inCode && /^#{1,6} (.+)$/.exec(line);
    if (heading) anchors.add(slug(heading[1]!));
  }
  return anchors;
}

/** Every relative link of a page (`[text](target)`), outside code blocks and inline code. */
function linksOf(path: string): string[] {
  const text = readFileSync(path, 'utf8').replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z]+:/i.test(target));
}

/** Every key path of the configuration schema (`dataflows.source.prefix`), read from zod's definitions. */
function keyPaths(schema: unknown, path = '', out = new Set<string>()): Set<string> {
  const def = (schema as { _zod?: { def?: Record<string, any> } } | undefined)?._zod?.def;
  if (!def) return out;
  const inner: unknown[] = {
    object: [],
    optional: [def.innerType], default: [def.innerType], prefault: [def.innerType], nullable: [def.innerType], readonly: [def.innerType], catch: [def.innerType],
    pipe: [def.in, def.out], union: def.options ?? [], array: [def.element], record: [def.valueType],
  }[def.type as string] ?? [];
  if (def.type === 'object') {
    for (const [key, value] of Object.entries(def.shape as Record<string, unknown>)) {
      const child = path ? `${path}.${key}` : key;
      out.add(child);
      keyPaths(value, child, out);
    }
  }
  for (const schemaInside of inner) keyPaths(schemaInside, path, out);
  return out;
}

describe('Function: README and docs/', () => {
  it('points every relative link at a file that exists, and every anchor at a heading in it', () => {
    // Prepare
    const broken: string[] = [];

    // Act
    for (const page of PAGES) {
      for (const target of linksOf(page)) {
        const [file, anchor] = target.split('#') as [string, string | undefined];
        const path = file === '' ? page : resolve(dirname(page), file);
        if (!existsSync(path)) broken.push(`${relative(root, page)}: ${target} (no such file)`);
        else if (anchor !== undefined && path.endsWith('.md') && !anchorsOf(path).has(anchor)) broken.push(`${relative(root, page)}: ${target} (no such heading)`);
      }
    }

    // Assess
    expect(broken).toEqual([]);
  });

  it('links every document in docs/ from the README', () => {
    // Prepare
    const linked = new Set(linksOf(join(root, 'README.md')).map((target) => resolve(root, target.split('#')[0]!)));

    // Act
    const orphans = DOCS.filter((doc) => !linked.has(doc)).map((doc) => relative(root, doc));

    // Assess
    expect(DOCS.length).toBeGreaterThan(5);
    expect(orphans).toEqual([]);
  });

  it('opens every document with its title and one line saying what it is for', () => {
    // Act
    const bad = DOCS.filter((doc) => {
      const [title, blank, purpose] = readFileSync(doc, 'utf8').split('\n');
      return !/^# \S/.test(title ?? '') || blank !== '' || !/^[A-Z]/.test(purpose ?? '');
    }).map((doc) => relative(root, doc));

    // Assess
    expect(bad).toEqual([]);
  });

  it('documents every configuration key in docs/configuration.md', () => {
    // Prepare: the key table's rows, by the keys their first cell names.
    const rows = readFileSync(join(root, 'docs', 'configuration.md'), 'utf8').split('\n').filter((line) => line.startsWith('| `'));
    const keys = [...keyPaths(configSchema)].map((path) => path.replace(/^dataflows\./, '')).filter((path) => !['$schema', 'dataflows'].includes(path));
    const groups = new Set(keys.map((path) => path.split('.').slice(0, -1).join('.')).filter(Boolean));

    // Act: a key is documented when a row names it (`source.prefix`, or `…format` for every mapped field's format),
    // or when a row names its parent and the key itself (`destination.auth` with `"usernameSecret"`; "as above" takes
    // in the row before).
    const undocumented = keys.filter((path) => !groups.has(path)).filter((path) => {
      const leaf = path.split('.').at(-1)!;
      const parent = path.split('.').slice(0, -1).join('.');
      return !rows.some((row, i) => {
        const cell = row.split(' | ')[0]!;
        const text = row.includes('as above') ? `${row} ${rows[i - 1] ?? ''}` : row;
        return cell.includes(`\`${path}\``) || cell.includes(`\`…${leaf}\``) || (cell.includes(`\`${parent}\``) && text.includes(`"${leaf}"`));
      });
    });

    // Assess
    expect(keys.length).toBeGreaterThan(50);
    expect(undocumented).toEqual([]);
  });

  it('gives `npm test` as the test command in the README (what .ci/run runs)', () => {
    // Prepare
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const ci = readFileSync(join(root, '.ci', 'run'), 'utf8');

    // Assess
    expect(readme).toMatch(/^npm test\b/m);
    expect(ci).toMatch(/^npm test$/m);
  });
});
