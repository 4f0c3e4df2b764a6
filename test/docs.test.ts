import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

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

  it('gives `npm test` as the test command in the README (what .ci/run runs)', () => {
    // Prepare
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const ci = readFileSync(join(root, '.ci', 'run'), 'utf8');

    // Assess
    expect(readme).toMatch(/^npm test\b/m);
    expect(ci).toMatch(/^npm test$/m);
  });
});
