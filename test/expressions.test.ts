import { compileExpression, isColumnVariable, toBoolean, toFieldText } from '../src/core/expressions';
import { parseConfig } from '../src/config/load';
import { AmbiguousColumnError, ConfigError, MissingColumnError } from '../src/errors';
import { configDocument } from './support/factories';

const HEADER = ['member_id', 'channel', ' badge_code ', 'Event Date', 'points', 'int'];
const PATH = 'dataflows[0].mapping.badgeMetaId.expression';
const record = (overrides: Partial<Record<string, string>> = {}) => {
  const values: Record<string, string> = { member_id: '12345', channel: 'store', badge_code: 'b1', 'Event Date': '01/02/2026', points: '7', int: 'x', ...overrides };
  return HEADER.map((h) => ` ${values[h.trim()]!} `);
};

describe('Function: compileExpression', () => {
  it('reads columns by name and by row, trimmed', () => {
    // Prepare
    const evaluate = compileExpression('channel == "store" ? row["Event Date"] : badge_code', HEADER, PATH);

    // Act
    const results = [evaluate(record()), evaluate(record({ channel: 'web' }))];

    // Assess
    expect(results).toEqual([
      { ok: true, value: '01/02/2026' },
      { ok: true, value: 'b1' },
    ]);
  });

  it('gives CEL integers as BigInt and converts text with int()', () => {
    // Prepare
    const evaluate = compileExpression('int(points) * 2', HEADER, PATH);

    // Act
    const result = evaluate(record());

    // Assess
    expect(result).toEqual({ ok: true, value: 14n });
  });

  it('answers a failing record with a one-line message instead of throwing', () => {
    // Prepare
    const typeError = compileExpression('int(points) > 3', HEADER, PATH);
    const missingKey = compileExpression('row["nope"]', HEADER, PATH);

    // Act
    const results = [typeError(record({ points: 'abc' })), missingKey(record())];

    // Assess
    expect(results).toEqual([
      { ok: false, message: 'int() type error: cannot convert to int' },
      { ok: false, message: 'No such key: nope' },
    ]);
  });

  it('reads the whole row when the expression uses it as a map', () => {
    // Prepare
    const evaluate = compileExpression('size(row) == 6 && row.exists(k, k == "Event Date") && [1].all(member_id, member_id > 0)', HEADER, PATH);

    // Act
    const result = evaluate(record());

    // Assess
    expect(result).toEqual({ ok: true, value: true });
  });

  it('fails the file on a variable that is neither row nor a column', () => {
    // Act
    const act = () => compileExpression('member_idx == "" ? "1" : member_id', HEADER, PATH);

    // Assess
    expect(act).toThrow(MissingColumnError);
    expect(act).toThrow(`${PATH} names "member_idx", neither "row" nor a column of the header`);
  });

  it('fails the file on a variable whose column appears twice', () => {
    // Act
    const act = () => compileExpression('channel', [...HEADER, 'channel'], PATH);

    // Assess
    expect(act).toThrow(AmbiguousColumnError);
  });

  it('names the path of an expression that does not parse', () => {
    // Act
    const act = () => compileExpression('channel ==', HEADER, PATH);

    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(`${PATH}: is not a valid CEL expression: Unexpected token: EOF (at character 11)`);
  });
});

describe('Function: parseConfig, on an expression', () => {
  it('refuses an expression nested deeper than evaluation can go, naming its JSON path', () => {
    // Prepare: both parse within 4,096 characters (cel-js limits brackets, not operator chains); cel-js's evaluation
    // of the first overflows the stack on every record
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const withFilter = (expression: string) => ({ dataflows: [{ ...flow, filter: { expression } }] });
    const nots = `${'!'.repeat(4000)}true`;
    const sums = `${Array.from({ length: 1500 }, () => 'a').join('+')} == ""`;

    // Act / Assess
    expect(compileExpression(nots, ['a'], 'x', { interpret: true })(['a'])).toEqual({ ok: false, message: 'Maximum call stack size exceeded' });
    expect(() => parseConfig(withFilter(nots))).toThrow('dataflows[0].filter.expression: nests 4001 levels deep, more than 500');
    expect(() => parseConfig(withFilter(sums))).toThrow('dataflows[0].filter.expression: nests 1501 levels deep, more than 500');
    expect(parseConfig(withFilter(`${Array.from({ length: 300 }, () => 'a=="x"').join('||')}`)).dataflows[0]!.filter).toBeDefined();
  });
});

describe('Function: isColumnVariable', () => {
  it('takes CEL identifiers that are neither reserved, row, nor CEL names', () => {
    // Act
    const verdicts = ['member_id', '_x1', 'Event Date', '1st', 'in', 'row', 'int', 'string', 'while'].map(isColumnVariable);

    // Assess
    expect(verdicts).toEqual([true, true, false, false, false, false, false, false, false]);
  });
});

describe('Function: toFieldText', () => {
  it('turns strings, numbers, null and timestamps into text and refuses the rest', () => {
    // Act
    const results = ['a', 12n, 1.5, null, new Date(Date.UTC(2026, 0, 2)), true, [1n], new Map()].map(toFieldText);

    // Assess
    expect(results).toEqual([
      { ok: true, value: 'a' },
      { ok: true, value: '12' },
      { ok: true, value: '1.5' },
      { ok: true, value: '' },
      { ok: true, value: '2026-01-02T00:00:00.000Z' },
      { ok: false, message: 'the result is a bool; a field needs a string, a number, a timestamp or null' },
      { ok: false, message: 'the result is a list; a field needs a string, a number, a timestamp or null' },
      { ok: false, message: 'the result is a map; a field needs a string, a number, a timestamp or null' },
    ]);
  });
});

describe('Function: toBoolean', () => {
  it('takes a bool and nothing else', () => {
    // Act
    const results = [true, false, 'true', 1n].map(toBoolean);

    // Assess
    expect(results).toEqual([
      { ok: true, value: true },
      { ok: true, value: false },
      { ok: false, message: 'the result is a string, not a bool' },
      { ok: false, message: 'the result is an int, not a bool' },
    ]);
  });
});

describe('Function: compileExpression (direct form)', () => {
  const header = ['member_id', 'channel', 'badge_code', 'Event Date', 'event_time', 'points'];
  const records = [
    ['12345', 'store', 'b1', '01/02/2026', '10:30', '7'],
    [' ', '', '', '', '', ''],
    ['😀x', 'Store', 'b1', '01/02/2026', '9:05', '-3'],
    ['7', 'web', 'b2 ', 'é', 'e\u0301', '12'],
  ];
  const expressions = [
    'channel == "store" ? "6571a3b9e4b0c1a2b3c4d5e7" : badge_code',
    'event_date_missing_is_not_used == "" || true',
    'row["Event Date"] + " " + event_time',
    'member_id == "" ? "999" : member_id',
    'size(member_id) == 0',
    'size(member_id)',
    'size(member_id) >= 2 && !(channel != "web")',
    'channel in ["store", "web"] || badge_code.startsWith("b") && badge_code.endsWith(" ") || row.channel.contains("tor")',
    'size(row["Event Date"]) > 1 ? size(event_time) : 0',
    '"a" + "b" == "ab"',
    'row["Event Date"] == event_time',
    'member_id.hasOwnProperty("a")',
    'int(points) > 3',
    'row["nope"] == ""',
    'channel == null',
    'true ? channel : null',
  ].filter((e) => !e.includes('event_date_missing'));
  const INTERPRETED = ['member_id.hasOwnProperty("a")', 'int(points) > 3', 'row["nope"] == ""', 'channel == null', 'true ? channel : null'];

  it('runs the common shapes directly, and the rest through cel-js', () => {
    // Act
    const direct = expressions.filter((source) => compileExpression(source, header, 'x').direct === true);

    // Assess
    expect(direct).toEqual(expressions.filter((source) => !INTERPRETED.includes(source)));
  });

  it('gives what cel-js gives, value and error alike, for every expression on every record', () => {
    // Act
    const differences = expressions.flatMap((source) => {
      const direct = compileExpression(source, header, 'x');
      const interpreted = compileExpression(source, header, 'x', { interpret: true });
      return records.map((r) => ({ source, record: r, direct: direct(r), interpreted: interpreted(r) })).filter((d) => JSON.stringify(d.direct, big) !== JSON.stringify(d.interpreted, big));
    });

    // Assess
    expect(differences).toEqual([]);
  });

  it('leaves an expression too deeply nested for the direct form to cel-js instead of overflowing the stack', () => {
    // Prepare: 2,000 terms fit in the configuration's 4,096 characters and parse, 2,000 levels deep
    const source = Array.from({ length: 2000 }, () => 'badge_code').join('+');

    // Act
    const evaluate = compileExpression(source, header, 'x');

    // Assess
    expect(evaluate(records[0]!)).toEqual({ ok: true, value: records[0]![2]!.trim().repeat(2000) });
  });

  it('answers a result longer than a string can be with a one-line message, as cel-js does, instead of throwing', () => {
    // Prepare: 1,024 copies of a 600,000-character field (under csv.maxRecordBytes), in a tree ten levels deep that
    // fits in 4,096 characters, are more than V8's longest string
    const pairs = (depth: number): string => (depth === 0 ? 'a' : `(${pairs(depth - 1)}+${pairs(depth - 1)})`);
    const source = pairs(10);
    const long = ['b'.repeat(600_000)];
    const direct = compileExpression(source, ['a'], 'x');
    const interpreted = compileExpression(source, ['a'], 'x', { interpret: true });

    // Act
    const results = [direct(long), interpreted(long)];

    // Assess
    expect(direct.direct).toBe(true);
    expect(results).toEqual([
      { ok: false, message: 'Invalid string length' },
      { ok: false, message: 'Invalid string length' },
    ]);
  });
});

describe('Function: compileExpression (direct form, differential fuzz)', () => {
  // Headers that are CEL names (size, timestamp, dyn, type…), have spaces, or read as row["…"]; values with
  // surrogate pairs, a lone surrogate, combining marks, a BOM, whitespace, digits and signs.
  const header = ['a', 'b', 'Event Date', 'size', 'timestamp', 'dyn', 'type', 'cel', 'x y', 'constructor', 'toString', 'has'];
  // Few values, the same as the literals', so that comparisons go both ways (' ', '\uFEFF' and '\t' trim away).
  const values = ['', ' ', 'a', '😀', 'store', '12', '\uD800', 'e\u0301', '\uFEFF', '\t12 ', 'null'];
  const texts = ['a', 'b', 'row["Event Date"]', 'row.a', 'row["x y"]', '""', '"a"', '"😀"', '"store"', '"12"', 'size', 'timestamp', 'dyn', 'type', 'cel', 'constructor', 'toString', 'has', 'row.missing', 'row["size"]', 'row.constructor'];
  const ints = ['1', '0', '-1', '2', 'size(a)', 'size(b)', 'size("😀")', 'size(row["Event Date"])', '9223372036854775807'];
  const bools = ['a == "a"', 'b != ""', 'row["x y"] == a', 'a.endsWith("a")', 'b.startsWith("s")', 'dyn.contains("2")', 'a in ["", "store"]', 'size(b) > 1', 'b.endsWith("e")', 'size(a) <= size(b)', 'size(b) >= 1', 'a < size(b)'];
  const others = ['null', 'true', 'false', '1.5', '1u', 'int(a)', '[1]', '{}', 'b"x"'];
  // mulberry32, seeded: the same expressions on every run
  let seed = 42;
  const next = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[next(xs.length)]!;
  const shapes: Array<(x: () => string) => string> = [
    (x) => `${x()} == ${x()}`,
    (x) => `${x()} != ${x()}`,
    (x) => `(${x()}) ? (${x()}) : (${x()})`,
    (x) => `(${x()}) && (${x()})`,
    (x) => `(${x()}) || (${x()})`,
    (x) => `!(${x()})`,
    (x) => `(${x()}) + (${x()})`,
    (x) => `(${x()}) ${pick(['<', '<=', '>', '>='])} (${x()})`,
    (x) => `(${x()}) in [${pick(['', '"a"', '"a", ""', '"😀", "store"', '1', '"a", 1'])}]`,
    (x) => `size(${x()})`,
    (x) => `(${x()}).${pick(['startsWith', 'endsWith', 'contains'])}(${x()})`,
  ];
  const generate = (depth: number): string => (depth <= 0 || next(8) === 0 ? pick([...texts, ...bools, ...bools, ...ints, ...others]) : pick(shapes)(() => generate(depth - 1)));

  it('gives what cel-js gives, value and error alike, on thousands of generated expressions and records', () => {
    // Prepare
    const sources = Array.from({ length: 3000 }, () => generate(1 + next(3)));
    let direct = 0;

    // Act
    const differences = sources.flatMap((source) => {
      const fast = compileExpression(source, header, 'x');
      const interpreted = compileExpression(source, header, 'x', { interpret: true });
      if (fast.direct) direct += 1;
      const records = Array.from({ length: 8 }, () => header.map(() => pick(values)));
      return records.map((r) => ({ source, record: r, direct: JSON.stringify(fast(r), big), interpreted: JSON.stringify(interpreted(r), big) })).filter((d) => d.direct !== d.interpreted);
    });

    // Assess
    expect(differences).toEqual([]);
    expect(direct).toBeGreaterThan(300);
  });
});

function big(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value}n` : value;
}
