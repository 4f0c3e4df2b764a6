/**
 * Figures a maintainer cares about: the longest functions in src/, lib/ and lambdas/ (by lines, body included).
 * `tsx scripts/house.ts [--most N]`
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

export interface FunctionLength { file: string; name: string; line: number; lines: number }

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) yield path;
  }
}

function nameOf(node: ts.Node, source: ts.SourceFile): string {
  const named = node as { name?: ts.Node };
  if (named.name) return named.name.getText(source);
  if (ts.isConstructorDeclaration(node)) return `${(node.parent as ts.ClassDeclaration).name?.getText(source) ?? 'class'}.constructor`;
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) return parent.name.getText(source);
  if (ts.isCallExpression(parent)) return `(callback of ${parent.expression.getText(source).slice(0, 40)})`;
  return '(anonymous)';
}

/** Every function-like node of the files under `roots`, with its length in lines. */
export function functionLengths(root: string, roots: readonly string[]): FunctionLength[] {
  const out: FunctionLength[] = [];
  for (const dir of roots) {
    for (const file of walk(join(root, dir))) {
      const text = readFileSync(file, 'utf8');
      const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isFunctionLike(node) && (node as { body?: ts.Node }).body) {
          const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
          const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
          out.push({ file: relative(root, file), name: nameOf(node, source), line: start + 1, lines: end - start + 1 });
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
  }
  return out.sort((a, b) => b.lines - a.lines);
}

if (require.main === module) {
  const most = Number(process.argv[process.argv.indexOf('--most') + 1]) || 20;
  const all = functionLengths(process.cwd(), ['src', 'lib', 'lambdas']);
  for (const f of all.slice(0, most)) console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}`);
  console.log(`functions over 80 lines: ${all.filter((f) => f.lines > 80).length} of ${all.length}`);
}
