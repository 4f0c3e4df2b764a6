/**
 * The product's one CEL module (https://cel.dev, evaluated by `@marcbachmann/cel-js`): mapped fields'
 * `expression` and the dataflow's `filter` both compile here, once per file, against the file's header.
 *
 * In an expression, `row` is a map of (trimmed) header → (trimmed) field text, and each column whose trimmed header is
 * a CEL identifier (not a reserved word, not `row`, not a name CEL already defines such as `int` or `string`) is also
 * a variable of its own holding that text. Every value is text: `int(points) > 3` converts, and CEL integers are
 * 64-bit (BigInt here), so `string(int(points) * 2)` is decimal text again.
 *
 * Only what an expression uses is built per record: the variables it names, and `row` with only the keys it reads
 * literally (`row["Event Date"]`, `row.status`) unless it uses `row` as a whole (`size(row)`, `row[k]`).
 */
import { type ASTNode, Environment, parse as parseCel } from '@marcbachmann/cel-js';
import { celErrorMessage } from '../config/schema';
import { AmbiguousColumnError, ConfigError, MissingColumnError } from '../errors';

/** What an expression gave for one record: its value, or why it has none (one line, short). Never thrown. */
export type ExpressionResult = { ok: true; value: unknown } | { ok: false; message: string };
/** A compiled expression: one call per record, with the record's fields in header order. */
export type CompiledExpression = (fields: readonly string[]) => ExpressionResult;
/** A value turned into what a mapped field or a filter needs. */
export type Converted<T> = { ok: true; value: T } | { ok: false; message: string };

/** The name under which the whole record is a map. */
export const ROW_VARIABLE = 'row';

/** CEL's identifiers: `[_a-zA-Z][_a-zA-Z0-9]*`. */
const IDENTIFIER = /^[_a-zA-Z][_a-zA-Z0-9]*$/;
/** Words CEL reserves (language keywords and literals): never usable as a variable. */
const RESERVED = new Set([
  'true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let',
  'loop', 'package', 'namespace', 'return', 'var', 'void', 'while',
]);
/** The macros that bind a variable (their first argument) within their other arguments. */
const BINDING_MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter', 'bind']);
/** Names CEL defines itself (types such as `int`, `string`; namespaces such as `cel`): a column cannot take them. */
const builtIns = new Environment();

/** Whether a (trimmed) header can be used as a variable of its own in an expression. */
export function isColumnVariable(name: string): boolean {
  return IDENTIFIER.test(name) && !RESERVED.has(name) && name !== ROW_VARIABLE && !builtIns.hasVariable(name);
}

/** What an expression reads: the free identifiers it names, and of `row` the literal keys or all of it. */
interface Uses {
  identifiers: Set<string>;
  rowKeys: Set<string>;
  wholeRow: boolean;
}

/** Walks the AST for the free identifiers and `row`'s literal keys; the variables macros bind are not free. */
function usesOf(ast: ASTNode): Uses {
  const uses: Uses = { identifiers: new Set(), rowKeys: new Set(), wholeRow: false };
  const rowKey = (node: ASTNode, bound: ReadonlySet<string>): string | undefined => {
    if (node.op === '.' || node.op === '.?') {
      const [target, key] = node.args;
      return target.op === 'id' && target.args === ROW_VARIABLE && !bound.has(ROW_VARIABLE) ? key : undefined;
    }
    if (node.op === '[]' || node.op === '[?]') {
      const [target, key] = node.args;
      const literal = key.op === 'value' && typeof key.args === 'string';
      return literal && target.op === 'id' && target.args === ROW_VARIABLE && !bound.has(ROW_VARIABLE) ? key.args : undefined;
    }
    return undefined;
  };
  const visit = (node: ASTNode, bound: ReadonlySet<string>): void => {
    const key = rowKey(node, bound);
    if (key !== undefined) {
      uses.rowKeys.add(key);
      return;
    }
    switch (node.op) {
      case 'value':
        return;
      case 'id':
        if (bound.has(node.args)) return;
        if (node.args === ROW_VARIABLE) uses.wholeRow = true;
        else uses.identifiers.add(node.args);
        return;
      case '.':
      case '.?':
        return visit(node.args[0], bound);
      case 'call':
        return node.args[1].forEach((arg) => visit(arg, bound));
      case 'rcall': {
        const [name, target, args] = node.args;
        visit(target, bound);
        const first = args[0];
        if (BINDING_MACROS.has(name) && first?.op === 'id' && args.length > 1) {
          const inner = new Set([...bound, first.args]);
          return args.slice(1).forEach((arg) => visit(arg, inner));
        }
        return args.forEach((arg) => visit(arg, bound));
      }
      case 'map':
        return node.args.forEach(([k, v]) => (visit(k, bound), visit(v, bound)));
      case '!_':
      case '-_':
        return visit(node.args, bound);
      default:
        return (node.args as ASTNode[]).forEach((arg) => visit(arg, bound));
    }
  };
  visit(ast, new Set());
  return uses;
}

/** Indexes the trimmed header: each name's first position, and the names that appear more than once. */
function headerIndex(header: readonly string[]): { index: Map<string, number>; repeated: Set<string>; names: string[] } {
  const names = header.map((h) => h.trim());
  const index = new Map<string, number>();
  const repeated = new Set<string>();
  names.forEach((name, i) => (index.has(name) ? repeated.add(name) : index.set(name, i)));
  return { index, repeated, names };
}

/**
 * Compiles an expression for one file's header: parsed once, its variables resolved once, then one cheap call per
 * record that never throws.
 *
 * @param path the expression's JSON path in the configuration (e.g. `dataflows[0].mapping.badgeMetaId.expression`),
 *   named in every error this throws.
 * @throws ConfigError when the expression does not parse (the configuration's validation catches that first);
 *   MissingColumnError when it names a variable that is neither `row`, a column of the header, nor CEL's own (the
 *   file fails, as for a mapped column that is missing); AmbiguousColumnError when a column it names appears twice.
 */
export function compileExpression(source: string, header: readonly string[], path: string): CompiledExpression {
  let program: ReturnType<typeof parseCel>;
  try {
    program = parseCel(source);
  } catch (error) {
    throw new ConfigError([`${path}: is not a valid CEL expression: ${celErrorMessage(error)}`]);
  }
  const uses = usesOf(program.ast);
  const { index, repeated, names } = headerIndex(header);
  const variables = [...uses.identifiers].filter((name) => !builtIns.hasVariable(name));
  const unknown = variables.filter((name) => !index.has(name) || !isColumnVariable(name));
  if (unknown.length > 0) {
    throw new MissingColumnError(
      `${path} names ${unknown.map((n) => `"${n}"`).join(', ')}, neither "row" nor a column of the header (a header that is not a CEL identifier is read as row["…"]); it has: ${names.map((n) => `"${n}"`).join(', ')}`,
    );
  }
  const ambiguous = [...variables, ...uses.rowKeys].filter((name) => repeated.has(name));
  if (ambiguous.length > 0) {
    throw new AmbiguousColumnError(`${path} reads ${ambiguous.map((n) => `"${n}"`).join(', ')}, which the header has more than once; which one is meant cannot be told`);
  }
  const build = contextBuilder(variables, uses, index);
  return (fields) => {
    try {
      return { ok: true, value: program(build(fields)) };
    } catch (error) {
      return { ok: false, message: celErrorMessage(error) };
    }
  };
}

/** The per-record context: only the variables the expression names, and `row` only as far as it reads it. */
function contextBuilder(variables: readonly string[], uses: Uses, index: ReadonlyMap<string, number>) {
  const slots = variables.map((name) => [name, index.get(name)!] as const);
  const rowSlots: (readonly [string, number])[] = uses.wholeRow
    ? [...index.entries()]
    : [...uses.rowKeys].flatMap((key) => (index.has(key) ? [[key, index.get(key)!] as const] : []));
  const needsRow = uses.wholeRow || uses.rowKeys.size > 0;
  return (fields: readonly string[]): Record<string, unknown> => {
    const context: Record<string, unknown> = {};
    for (const [name, i] of slots) context[name] = (fields[i] ?? '').trim();
    if (needsRow) {
      const row = new Map<string, string>();
      for (const [name, i] of rowSlots) row.set(name, (fields[i] ?? '').trim());
      context[ROW_VARIABLE] = row;
    }
    return context;
  };
}

/** "a bool", "an int": the CEL type of a value with its article, for messages. */
function aTypeOf(value: unknown): string {
  const type = celTypeOf(value);
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

/** The CEL type name of a value, for messages. */
function celTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'number') return 'double';
  if (Array.isArray(value)) return 'list';
  if (value instanceof Uint8Array) return 'bytes';
  if (value instanceof Date) return 'timestamp';
  if (value instanceof Map) return 'map';
  const name = (value as object).constructor?.name;
  return name === 'UnsignedInt' ? 'uint' : name === 'Duration' ? 'duration' : name === 'Type' ? 'type' : 'map';
}

/**
 * The text a mapped field takes from an expression's value: a string as it is (trimmed, as a column's text is), an
 * integer or a finite number in decimal, a timestamp in ISO 8601 (UTC), null as empty text. Anything else (a bool, a
 * list, a map…) is not a field's text.
 */
export function toFieldText(value: unknown): Converted<string> {
  if (typeof value === 'string') return { ok: true, value: value.trim() };
  if (value === null) return { ok: true, value: '' };
  if (typeof value === 'bigint') return { ok: true, value: value.toString() };
  if (typeof value === 'number') {
    return Number.isFinite(value) ? { ok: true, value: String(value) } : { ok: false, message: `the result is ${value}, not a number a field can hold` };
  }
  if (value instanceof Date) return { ok: true, value: value.toISOString() };
  if (celTypeOf(value) === 'uint') return { ok: true, value: String((value as { valueOf(): bigint }).valueOf()) };
  return { ok: false, message: `the result is ${aTypeOf(value)}; a field needs a string, a number, a timestamp or null` };
}

/** The decision a filter takes from an expression's value: a bool, and nothing else. */
export function toBoolean(value: unknown): Converted<boolean> {
  if (typeof value === 'boolean') return { ok: true, value };
  return { ok: false, message: `the result is ${aTypeOf(value)}, not a bool` };
}
