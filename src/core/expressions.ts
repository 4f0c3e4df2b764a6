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
/**
 * A compiled expression: one call per record, with the record's fields in header order. `direct` says it runs as
 * plain closures rather than through the CEL interpreter (see compileDirect).
 */
export type CompiledExpression = ((fields: readonly string[]) => ExpressionResult) & { readonly direct?: boolean };
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

export interface CompileOptions {
  /** Always evaluate with cel-js, never the direct form (tests compare the two). @default false */
  interpret?: boolean;
}

/** A value of a statically known CEL type, computed straight from the record's fields. */
type Scalar = string | bigint | boolean | null;
interface Direct {
  type: 'string' | 'int' | 'bool' | 'null';
  evaluate: (fields: readonly string[]) => Scalar;
}

/** The deepest AST the direct form compiles (real mappings and filters are a few levels deep). */
const DIRECT_MAX_DEPTH = 64;

/** CEL's size() of a string: its Unicode code points, as a CEL int. */
function codePoints(text: string): bigint {
  if (!/[\uD800-\uDFFF]/.test(text)) return BigInt(text.length);
  return BigInt(Array.from(text).length);
}

/**
 * The direct form of an expression: the common shapes of a mapping or a filter (text from columns, literals,
 * `==`, `!=`, `in` a list of strings, `? :`, `&&`, `||`, `!`, string `+`, `size()`, `startsWith`, `endsWith`,
 * `contains`, int comparisons) compiled to plain closures, about ten times faster than interpreting the AST per
 * record. Every value in it has a type known before any record is read (every variable is text), so none of it
 * can fail on a record: CEL's error semantics never come into play. Anything else (a conversion such as `int()`, a
 * macro, `row` as a whole, a key the header lacks, mixed types) is undefined here, and cel-js evaluates it.
 */
function compileDirect(node: ASTNode, index: ReadonlyMap<string, number>, depth = 0): Direct | undefined {
  // Its compiler and its closures recurse once a level: deeper than this (`a+a+…+a` two thousand terms long parses),
  // the stack could overflow, at compile time or per record, where cel-js evaluates it.
  if (depth > DIRECT_MAX_DEPTH) return undefined;
  const sub = (n: ASTNode) => compileDirect(n, index, depth + 1);
  const column = (name: string): Direct | undefined => {
    const i = index.get(name);
    return i === undefined ? undefined : { type: 'string', evaluate: (fields) => (fields[i] ?? '').trim() };
  };
  const typed = (n: ASTNode, type: Direct['type']) => {
    const d = sub(n);
    return d?.type === type ? d.evaluate : undefined;
  };
  switch (node.op) {
    case 'value': {
      const value = node.args;
      const type = typeof value === 'string' ? 'string' : typeof value === 'bigint' ? 'int' : typeof value === 'boolean' ? 'bool' : value === null ? 'null' : undefined;
      return type && { type, evaluate: () => value as Scalar };
    }
    case 'id':
      return isColumnVariable(node.args) ? column(node.args) : undefined;
    case '.':
    case '[]': {
      const [target, key] = node.args;
      const literal = typeof key === 'string' ? key : key.op === 'value' && typeof key.args === 'string' ? key.args : undefined;
      return target.op === 'id' && target.args === ROW_VARIABLE && literal !== undefined ? column(literal) : undefined;
    }
    case '==':
    case '!=': {
      const [a, b] = node.args.map(sub);
      if (!a || !b || a.type !== b.type || a.type === 'null') return undefined;
      const [x, y] = [a.evaluate, b.evaluate];
      return { type: 'bool', evaluate: node.op === '==' ? (f) => x(f) === y(f) : (f) => x(f) !== y(f) };
    }
    default:
      return compileDirectOperator(node, sub, typed);
  }
}

/** The string methods of the direct form (a Map: no name from an expression reaches an object's prototype). */
const STRING_METHODS = new Map<string, (a: string, b: string) => boolean>([
  ['startsWith', (a, b) => a.startsWith(b)],
  ['endsWith', (a, b) => a.endsWith(b)],
  ['contains', (a, b) => a.includes(b)],
]);

type TypedCompiler = (n: ASTNode, type: Direct['type']) => Direct['evaluate'] | undefined;

/** compileDirect's operators other than access and equality (see there). */
function compileDirectOperator(node: ASTNode, sub: (n: ASTNode) => Direct | undefined, typed: TypedCompiler): Direct | undefined {
  const bools = (ns: readonly ASTNode[]) => ns.map((n) => typed(n, 'bool'));
  switch (node.op) {
    case '&&':
    case '||': {
      const [x, y] = bools(node.args);
      if (!x || !y) return undefined;
      return { type: 'bool', evaluate: node.op === '&&' ? (f) => (x(f) as boolean) && y(f) : (f) => x(f) || y(f) };
    }
    case '!_': {
      const [x] = bools([node.args]);
      return x && { type: 'bool', evaluate: (f) => !(x(f) as boolean) };
    }
    case '?:': {
      const [c, a, b] = [typed(node.args[0], 'bool'), sub(node.args[1]), sub(node.args[2])];
      if (!c || !a || !b || a.type !== b.type) return undefined;
      const [x, y] = [a.evaluate, b.evaluate];
      return { type: a.type, evaluate: (f) => (c(f) ? x(f) : y(f)) };
    }
    case '+': {
      const [x, y] = node.args.map((n) => typed(n, 'string'));
      return x && y && { type: 'string', evaluate: (f) => (x(f) as string) + (y(f) as string) };
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const [x, y] = node.args.map((n) => typed(n, 'int'));
      if (!x || !y) return undefined;
      const compare = { '<': (a: bigint, b: bigint) => a < b, '<=': (a: bigint, b: bigint) => a <= b, '>': (a: bigint, b: bigint) => a > b, '>=': (a: bigint, b: bigint) => a >= b }[node.op];
      return { type: 'bool', evaluate: (f) => compare(x(f) as bigint, y(f) as bigint) };
    }
    case 'in': {
      const [item, list] = node.args;
      const x = typed(item, 'string');
      const values = list.op === 'list' && list.args.every((n) => n.op === 'value' && typeof n.args === 'string') ? new Set(list.args.map((n) => n.args as string)) : undefined;
      return x && values && { type: 'bool', evaluate: (f) => values.has(x(f) as string) };
    }
    case 'call': {
      const [name, args] = node.args;
      const x = name === 'size' && args.length === 1 ? typed(args[0]!, 'string') : undefined;
      return x && { type: 'int', evaluate: (f) => codePoints(x(f) as string) };
    }
    case 'rcall': {
      const [name, target, args] = node.args;
      const method = STRING_METHODS.get(name);
      const [x, y] = [typed(target, 'string'), args.length === 1 ? typed(args[0]!, 'string') : undefined];
      return method && x && y && { type: 'bool', evaluate: (f) => method(x(f) as string, y(f) as string) };
    }
    default:
      return undefined;
  }
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
export function compileExpression(source: string, header: readonly string[], path: string, options: CompileOptions = {}): CompiledExpression {
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
  const direct = options.interpret ? undefined : compileDirect(program.ast, index);
  if (direct) {
    const evaluate = direct.evaluate;
    // Nothing in it fails on a record's types, but a string can outgrow V8's longest (RangeError), as under cel-js.
    const run = (fields: readonly string[]): ExpressionResult => {
      try {
        return { ok: true, value: evaluate(fields) };
      } catch (error) {
        return { ok: false, message: celErrorMessage(error) };
      }
    };
    return Object.assign(run, { direct: true });
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
