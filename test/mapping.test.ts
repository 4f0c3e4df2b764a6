import { compileMapper, indexHeader } from '../src/core/mapping';
import { AmbiguousColumnError, MissingColumnError } from '../src/errors';
import { HEADER, KNOWN_BADGES, kolkataEpochMs, makeDataflow } from './support/factories';

const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const header = [...HEADER];
const fields = (overrides: Partial<Record<(typeof HEADER)[number], string>> = {}) => {
  const row: Record<string, string> = { member_id: '12345', badge_code: KNOWN_BADGES[0], event_time: '2026-11-20 10:30:00', expiry_date: '2027-01-31', note: 'x', ...overrides };
  return HEADER.map((h) => row[h]!);
};

describe('Function: compileMapper', () => {
  it('maps a record to the API item with both epoch and ISO dates in the zone', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields());

    // Assess
    expect(result).toEqual({
      ok: true,
      item: {
        badgeMetaId: KNOWN_BADGES[0],
        customerId: 12345,
        earnEventDate: kolkataEpochMs('2026-11-20 10:30:00'),
        earnExpiresOn: kolkataEpochMs('2027-01-31'),
        earnEventDateISO: '2026-11-20T10:30:00+05:30',
        earnExpiresOnISO: '2027-01-31T00:00:00+05:30',
      },
    });
  });

  it('sends epoch seconds when the destination asks for them', () => {
    // Prepare
    const flow = makeDataflow();
    const map = compileMapper({ ...flow, destination: { ...flow.destination, epochUnit: 's' } }, header, () => NOW);

    // Act
    const result = map(fields());

    // Assess
    expect(result.ok && result.item.earnEventDate).toBe(kolkataEpochMs('2026-11-20 10:30:00') / 1000);
  });

  it('trims surrounding whitespace of mapped fields', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ member_id: ' 12345 ', badge_code: ` ${KNOWN_BADGES[1]}\t` }));

    // Assess
    expect(result).toMatchObject({ ok: true, item: { customerId: 12345, badgeMetaId: KNOWN_BADGES[1] } });
  });

  it('sends an upper-case badge id in lower case, as Capillary writes its ids', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ badge_code: KNOWN_BADGES[1].toUpperCase() }));

    // Assess
    expect(result).toMatchObject({ ok: true, item: { badgeMetaId: KNOWN_BADGES[1] } });
  });

  it.each(['N/A', '', '12.5', '1e5', '-3', '+12', '0', '007', '9007199254740992', '12345678901234567890'])('rejects customerId "%s"', (value) => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ member_id: value }));

    // Assess
    expect(result).toMatchObject({ ok: false, rejection: { code: 'INVALID_CUSTOMER_ID' } });
  });

  it('accepts the largest customerId that survives as a number, 2^53 - 1', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ member_id: '9007199254740991' }));

    // Assess
    expect(result).toMatchObject({ ok: true, item: { customerId: 9007199254740991 } });
  });

  it.each(['', '6571a3b9e4b0', '6571a3b9e4b0c1a2b3c4d5eZ', '6571a3b9e4b0c1a2b3c4d5e6a'])('rejects badgeMetaId "%s"', (value) => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act + Assess
    expect(map(fields({ badge_code: value }))).toMatchObject({ ok: false, rejection: { code: 'INVALID_BADGE_ID' } });
  });

  it('names the date field at fault', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ expiry_date: '2027-02-30' }));

    // Assess
    expect(result).toMatchObject({ ok: false, rejection: { code: 'INVALID_DATE', message: expect.stringMatching(/^earnExpiresOn: "2027-02-30"/) } });
  });

  it('rejects an expiry that is not after the event', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ event_time: '2026-11-20 00:00:00', expiry_date: '2026-11-20' }));

    // Assess
    expect(result).toMatchObject({ ok: false, rejection: { code: 'EXPIRY_BEFORE_EVENT' } });
  });

  it('rejects an event more than a day in the future', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const tomorrow = map(fields({ event_time: '2026-11-28 12:00:00' }));
    const later = map(fields({ event_time: '2026-11-29 12:00:00' }));

    // Assess
    expect(tomorrow.ok).toBe(true);
    expect(later).toMatchObject({ ok: false, rejection: { code: 'EVENT_IN_FUTURE' } });
  });

  it('rejects a record with fewer or more fields than the header', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act + Assess
    expect(map(fields().slice(0, 4))).toMatchObject({ ok: false, rejection: { code: 'FIELD_COUNT' } });
    expect(map([...fields(), 'extra'])).toMatchObject({ ok: false, rejection: { code: 'FIELD_COUNT' } });
  });

  it('lists every problem of a record in its message, under the first code', () => {
    // Prepare
    const map = compileMapper(makeDataflow(), header, () => NOW);

    // Act
    const result = map(fields({ member_id: 'x', badge_code: 'y' }));

    // Assess
    expect(result).toMatchObject({ ok: false, rejection: { code: 'INVALID_CUSTOMER_ID', message: expect.stringContaining('badgeMetaId "y"') } });
  });

  it('uses a constant for every record', () => {
    // Prepare
    const flow = makeDataflow({
      mapping: {
        customerId: { column: 'member_id' },
        badgeMetaId: { value: KNOWN_BADGES[1] },
        earnEventDate: { column: 'event_time', format: 'yyyy-MM-dd HH:mm:ss', timeZone: 'Asia/Kolkata' },
        earnExpiresOn: { value: '2027-12-31', format: 'yyyy-MM-dd', timeZone: 'Asia/Kolkata' },
      },
    });
    const map = compileMapper(flow, ['member_id', 'event_time'], () => NOW);

    // Act
    const result = map(['777', '2026-11-20 10:30:00']);

    // Assess
    expect(result).toMatchObject({ ok: true, item: { customerId: 777, badgeMetaId: KNOWN_BADGES[1], earnExpiresOnISO: '2027-12-31T00:00:00+05:30' } });
  });
});

describe('Function: compileMapper (expressions)', () => {
  const EXPR_HEADER = ['member_id', 'channel', 'badge_code', 'event_date', 'event_time', 'Expiry Date', 'points'];
  const STORE_BADGE = '6571a3b9e4b0c1a2b3c4d5e7';
  const exprFlow = (mapping: Record<string, unknown> = {}) =>
    makeDataflow({
      mapping: {
        customerId: { expression: 'member_id == "" ? "999" : member_id' },
        badgeMetaId: { expression: `channel == "store" ? "${STORE_BADGE}" : badge_code` },
        earnEventDate: { expression: 'event_date + " " + event_time', format: 'dd/MM/yyyy HH:mm', timeZone: 'Asia/Kolkata' },
        earnExpiresOn: { expression: 'row["Expiry Date"]', format: 'dd/MM/yyyy', timeZone: 'Asia/Kolkata' },
        ...mapping,
      },
    });
  const exprRecord = (overrides: Partial<Record<string, string>> = {}) => {
    const values: Record<string, string> = { member_id: '12345', channel: 'web', badge_code: KNOWN_BADGES[0], event_date: '20/11/2026', event_time: '10:30', 'Expiry Date': '31/01/2027', points: '7', ...overrides };
    return EXPR_HEADER.map((h) => values[h]!);
  };

  it('maps every field from expressions, with format and zone applied to their results', () => {
    // Prepare
    const map = compileMapper(exprFlow(), EXPR_HEADER, () => NOW);

    // Act
    const results = [map(exprRecord()), map(exprRecord({ channel: 'store', member_id: ' ' }))];

    // Assess
    expect(results).toEqual([
      {
        ok: true,
        item: {
          badgeMetaId: KNOWN_BADGES[0],
          customerId: 12345,
          earnEventDate: kolkataEpochMs('2026-11-20 10:30:00'),
          earnExpiresOn: kolkataEpochMs('2027-01-31'),
          earnEventDateISO: '2026-11-20T10:30:00+05:30',
          earnExpiresOnISO: '2027-01-31T00:00:00+05:30',
        },
      },
      expect.objectContaining({ ok: true, item: expect.objectContaining({ badgeMetaId: STORE_BADGE, customerId: 999 }) }),
    ]);
  });

  it('takes an integer result as its decimal text', () => {
    // Prepare
    const map = compileMapper(exprFlow({ customerId: { expression: 'int(member_id) + 1' } }), EXPR_HEADER, () => NOW);

    // Act
    const result = map(exprRecord());

    // Assess
    expect(result).toMatchObject({ ok: true, item: { customerId: 12346 } });
  });

  it('rejects a record whose expression fails as EXPRESSION_ERROR, naming the field', () => {
    // Prepare
    const map = compileMapper(
      exprFlow({ customerId: { expression: 'int(points) > 3 ? member_id : "1"' }, earnExpiresOn: { expression: 'row["nope"]', format: 'dd/MM/yyyy' } }),
      EXPR_HEADER,
      () => NOW,
    );

    // Act
    const result = map(exprRecord({ points: 'abc' }));

    // Assess
    expect(result).toEqual({
      ok: false,
      rejection: { code: 'EXPRESSION_ERROR', message: 'customerId: int() type error: cannot convert to int; earnExpiresOn: No such key: nope' },
    });
  });

  it('rejects a result that is no field text as EXPRESSION_ERROR', () => {
    // Prepare
    const map = compileMapper(exprFlow({ badgeMetaId: { expression: 'channel == "store"' } }), EXPR_HEADER, () => NOW);

    // Act
    const result = map(exprRecord());

    // Assess
    expect(result).toEqual({
      ok: false,
      rejection: { code: 'EXPRESSION_ERROR', message: 'badgeMetaId: the result is a bool; a field needs a string, a number, a timestamp or null' },
    });
  });

  it('validates an expression result as it validates a column', () => {
    // Prepare
    const map = compileMapper(exprFlow({ badgeMetaId: { expression: 'badge_code + "x"' } }), EXPR_HEADER, () => NOW);

    // Act
    const result = map(exprRecord());

    // Assess
    expect(result).toMatchObject({ ok: false, rejection: { code: 'INVALID_BADGE_ID' } });
  });

  it('fails the file when an expression names a column the header lacks', () => {
    // Act
    const act = () => compileMapper(exprFlow(), EXPR_HEADER.filter((h) => h !== 'channel'), () => NOW);

    // Assess
    expect(act).toThrow(MissingColumnError);
    expect(act).toThrow(/mapping\.badgeMetaId\.expression names "channel"/);
  });
});

describe('Function: indexHeader', () => {
  it('names every missing column and the field it maps to', () => {
    // Act + Assess
    expect(() => indexHeader(makeDataflow(), ['member_id', 'event_time'])).toThrow(MissingColumnError);
    expect(() => indexHeader(makeDataflow(), ['member_id', 'event_time'])).toThrow(/"badge_code" \(mapped to badgeMetaId\), "expiry_date" \(mapped to earnExpiresOn\)/);
  });

  it('refuses a mapped column that appears twice', () => {
    // Act + Assess
    expect(() => indexHeader(makeDataflow(), [...header, 'member_id'])).toThrow(AmbiguousColumnError);
  });

  it('demands no column for a field mapped by an expression', () => {
    // Prepare
    const flow = makeDataflow({ mapping: { ...makeDataflow().mapping, badgeMetaId: { expression: 'row["code"]' } } });

    // Act + Assess
    expect(indexHeader(flow, ['member_id', 'event_time', 'expiry_date']).get('member_id')).toBe(0);
  });

  it('tolerates a repeated column that the mapping does not use', () => {
    // Act + Assess
    expect(indexHeader(makeDataflow(), [...header, 'note']).get('member_id')).toBe(0);
  });
});
