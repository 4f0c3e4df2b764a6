import { DateTime } from 'luxon';
import { compileDateParser } from './dates';
import { type DateGuess, guessDateFormat } from './infer-dates';
import { type SampleEncoding, SampleError, type SplitRecords, decodeSample, detectDialect, showDelimiter } from './infer-text';

/** One thing init inferred, and why: a line of what it prints. */
export interface Decision {
  subject: string;
  choice: string;
  why: string;
}

/** A choice init could not make for certain: the draft takes a stated default, and the user should look at it. */
export interface Review {
  /** The JSON path in the dataflow it concerns. */
  path: string;
  message: string;
}

/** What init drafts from a sample. */
export interface Draft {
  /** The configuration document (one dataflow), as it is written. */
  document: { dataflows: [Record<string, unknown>] };
  decisions: Decision[];
  review: Review[];
  encoding: SampleEncoding;
  /** Data records of the sample that were looked at (the header not counted). */
  records: number;
  /** The record limit stopped the reading: records after these were not looked at. */
  limited: boolean;
  /**
   * The sample's text up to the end of its last whole record that was looked at, in the sample's encoding: what
   * the product's own reader can check the draft against.
   */
  checked: Buffer;
}

export interface InferOptions {
  /** The dataflow's name. */
  name: string;
  /** The bytes are a prefix of the file: its last record may be cut. */
  cut: boolean;
  /** Most records looked at. @default 10000 */
  maxRecords?: number;
  /** The decrypt block, when the sample was PGP-encrypted. */
  decrypt?: { privateKeySecret: string; passphraseSecret?: string };
}

/** Records looked at by default: enough to see the shapes of the values, quick on any machine. */
export const DEFAULT_MAX_RECORDS = 10_000;

/** A customer id as the mapper reads it (mapping.ts's readCustomerId): a positive whole number below 2^53. */
const CUSTOMER_ID = /^[1-9]\d{0,15}$/;
/** A badge id as the mapper reads it (mapping.ts's readBadgeId): 24 hexadecimal characters. */
const BADGE_ID = /^[0-9a-fA-F]{24}$/;

/** Header words that name a column's role. */
const HINTS = {
  customer: /member|customer|cust|user|loyalty|client|account|person|card/i,
  badge: /badge|meta|award|achievement/i,
  expiry: /expir|valid.?(?:until|till|to|thru)|until|\bend|end_|_end|\bexp(?:_|\b)|vence|vencim|caduc|ablauf/i,
  event: /event|earn|issue|award|achiev|created|txn|transaction|date|time|when|fecha|datum/i,
  /** Words that name the event itself, over a column that is merely a date (`created_at`). */
  eventStrong: /event|earn|issue|award|achiev|evento/i,
};

/** The placeholder destination: it validates, and says by its name that it must be edited. */
export const PLACEHOLDER_DESTINATION = {
  baseUrl: 'https://your-cluster.api.capillarytech.com',
  auth: { type: 'basic', usernameSecret: 'badges/api-user', passwordSecret: 'badges/api-password' },
} as const;
/** The badge id of a draft whose sample has no column of badge ids. */
export const PLACEHOLDER_BADGE_ID = '000000000000000000000000';
/** The expiry of a draft whose sample has a single date column. */
export const DEFAULT_EXPIRY = '2099-12-31';

interface Column {
  index: number;
  name: string;
  /** Each record's value, trimmed ('' when empty or missing). */
  cells: string[];
  /** The non-empty values. */
  values: string[];
  customers: number;
  badges: number;
  date?: DateGuess;
}

function profile(records: readonly string[][], header: readonly string[]): Column[] {
  return header.map((raw, index) => {
    const cells = records.map((r) => (r[index] ?? '').trim());
    const values = cells.filter((v) => v !== '');
    const customers = values.filter((v) => CUSTOMER_ID.test(v) && Number.isSafeInteger(Number(v))).length;
    const badges = values.filter((v) => BADGE_ID.test(v)).length;
    const date = badges > values.length / 2 ? undefined : guessDateFormat(values);
    return { index, name: raw.trim(), cells, values, customers, badges, ...(date ? { date } : {}) };
  });
}

const share = (n: number, of: number) => (of === 0 ? 0 : n / of);
const isDate = (c: Column) => c.date !== undefined && share(c.date.fits, c.date.of) >= 0.5;
const hinted = (c: Column, hint: RegExp) => (hint.test(c.name) ? 1 : 0);

const customerLike = (c: Column) => share(c.customers, c.values.length) >= 0.5;
const badgeLike = (c: Column) => share(c.badges, c.values.length) >= 0.5;
/** A header that names a date or time (and not a customer): its whole numbers are epoch instants, not ids. */
const dateNamed = (c: Column) => (!HINTS.customer.test(c.name) && (HINTS.event.test(c.name) || HINTS.expiry.test(c.name)) ? 1 : 0);

/**
 * The customer id column: mostly whole numbers; a header naming customers first, then one whose header does not name
 * a date (10-digit ids are also epoch seconds of 2001–2100), then a column that does not read as dates.
 */
function pickCustomer(columns: Column[]): Column | undefined {
  return columns
    .filter(customerLike)
    .sort((a, b) => hinted(b, HINTS.customer) - hinted(a, HINTS.customer) || dateNamed(a) - dateNamed(b) || Number(isDate(a)) - Number(isDate(b)) || share(b.customers, b.values.length) - share(a.customers, a.values.length) || a.index - b.index)[0];
}

function pickBadge(columns: Column[]): Column | undefined {
  return columns
    .filter(badgeLike)
    .sort((a, b) => hinted(b, HINTS.badge) - hinted(a, HINTS.badge) || share(b.badges, b.values.length) - share(a.badges, a.values.length) || a.index - b.index)[0];
}

/** Columns the values alone cannot tell apart, when no header settles it: customer ids against epoch seconds, two 24-hex columns. */
function rivalsReview(columns: Column[], customer: Column, badge: Column | undefined): Review[] {
  const review: Review[] = [];
  const rivals = columns.filter((c) => c !== customer && customerLike(c));
  if (!HINTS.customer.test(customer.name) && rivals.length > 0 && (isDate(customer) || rivals.some(isDate))) {
    const own = isDate(customer) ? `the values of ${customer.name} also read as ${customer.date!.format}` : `${customer.name} holds whole numbers that do not read as dates`;
    review.push({
      path: 'mapping.customerId.column',
      message: `${own}, and ${rivals.map((c) => c.name).join(', ')} also hold${rivals.length === 1 ? 's' : ''} whole numbers: no header names the customer ids, so the draft takes ${customer.name}; check which column holds them (the sample check cannot tell: both read)`,
    });
  }
  const badges = columns.filter((c) => c !== customer && badgeLike(c));
  if (badge && !HINTS.badge.test(badge.name) && badges.length > 1) {
    review.push({
      path: 'mapping.badgeMetaId.column',
      message: `${badges.map((c) => c.name).join(' and ')} ${badges.length === 2 ? 'both' : 'all'} hold 24-hexadecimal values and no header names the badge: the draft takes ${badge.name}; check which holds the badge ids`,
    });
  }
  if (badge && !HINTS.badge.test(badge.name) && badge.values.every((v) => /^\d+$/.test(v))) {
    review.push({ path: 'mapping.badgeMetaId.column', message: `${badge.name} holds 24-digit numbers, which are also 24 hexadecimal characters, and its header does not name a badge: check that it holds badge ids` });
  }
  return review;
}

/** In how many records the first column's date is later than the second's (both read), of how many. */
function laterIn(a: Column, b: Column): { later: number; of: number } {
  const pa = compileDateParser(a.date!.format, 'UTC');
  const pb = compileDateParser(b.date!.format, 'UTC');
  let later = 0;
  let of = 0;
  a.cells.forEach((text, i) => {
    const other = b.cells[i] ?? '';
    const x = text ? pa(text) : undefined;
    const y = other ? pb(other) : undefined;
    if (!x?.ok || !y?.ok) return;
    of++;
    if (x.epochMs > y.epochMs) later++;
  });
  return { later, of };
}

interface Dates {
  event: Column;
  expiry?: Column;
  why: { event: string; expiry: string };
  others: Column[];
  /** The header names an expiry that the values put before the event in most records. */
  conflict?: string;
}

/** Which date column is the event and which the expiry: header words first, else the later one is the expiry. */
function pickDates(dates: Column[]): Dates {
  const expiryHinted = dates.find((c) => HINTS.expiry.test(c.name));
  const rest = dates.filter((c) => c !== expiryHinted);
  const eventHint = (c: Column) => hinted(c, HINTS.eventStrong) * 2 + hinted(c, HINTS.event);
  const eventFirst = [...rest].sort((a, b) => eventHint(b) - eventHint(a) || a.index - b.index);
  let event = eventFirst[0] ?? expiryHinted!;
  let expiry = event === expiryHinted ? undefined : (expiryHinted ?? eventFirst[1]);
  if (!expiry) return { event, why: { event: HINTS.event.test(event.name) ? 'the only date column; its header names an event' : 'the only date column', expiry: '' }, others: [] };
  const byHeader = expiryHinted !== undefined;
  let order = laterIn(expiry, event);
  if (!byHeader && order.later < order.of - order.later) {
    [event, expiry] = [expiry, event];
    order = laterIn(expiry, event);
  }
  const when = `later than ${event.name} in ${order.later} of ${order.of} records`;
  return {
    event,
    expiry,
    why: {
      event: byHeader ? `its header does not name an expiry and ${expiry.name}'s does` : HINTS.event.test(event.name) ? 'its header names an event, and it is the earlier date' : 'the earlier date',
      expiry: byHeader ? `its header names an expiry; ${when}` : `no header names an expiry: the later date (${when})`,
    },
    others: dates.filter((c) => c !== event && c !== expiry),
    ...(byHeader && order.later * 2 < order.of
      ? { conflict: `${expiry.name} is taken for the expiry by its header, but it is later than ${event.name} in only ${order.later} of ${order.of} records: the run rejects the others EXPIRY_BEFORE_EVENT; check which is which` }
      : {}),
  };
}

/** Values of a row that have the shape their column has below it: the row is data, not a header. */
function dataLike(row: readonly string[], typed: Array<{ column: Column; kind: 'customer' | 'badge' | 'date' }>): string[] {
  return typed
    .filter(({ column, kind }) => {
      const v = (row[column.index] ?? '').trim();
      if (kind === 'customer') return CUSTOMER_ID.test(v);
      if (kind === 'badge') return BADGE_ID.test(v);
      return v !== '' && compileDateParser(column.date!.format, 'UTC')(v).ok;
    })
    .map(({ column }) => `"${(row[column.index] ?? '').trim()}"`);
}

function headerless(header: readonly string[], typed: Array<{ column: Column; kind: 'customer' | 'badge' | 'date' }>, delimiter: string): SampleError | undefined {
  const like = dataLike(header, typed);
  if (like.length === 0 || like.length * 2 < typed.length) return undefined;
  const names = header.map((_, i) => {
    const t = typed.find((x) => x.column.index === i);
    return t ? (t.kind === 'customer' ? 'customer_id' : t.kind === 'badge' ? 'badge_id' : t.column === typed.find((x) => x.kind === 'date')?.column ? 'event_date' : 'expiry_date') : `column_${i + 1}`;
  });
  return new SampleError(
    `The first row looks like data, not a header: its values ${like.join(', ')} have the shapes of the values below them. ` +
      `The product maps columns by the names in the file's first row, so the file needs a header row: have the vendor add one ` +
      `(e.g. ${names.join(delimiter)}) and run init on such a file; nothing was written`,
  );
}

/**
 * Drafts a dataflow from the leading bytes of a sample (decrypted and gunzipped already): encoding, delimiter, quote
 * and header, the columns of customer ids, badge ids and dates, and each date's format, every choice with its reason.
 *
 * @throws SampleError when the sample cannot be drafted from (not text, one column, no header, no dates).
 */
export function inferDraft(bytes: Buffer, options: InferOptions): Draft {
  const decoded = decodeSample(bytes, options.cut);
  const limit = (options.maxRecords ?? DEFAULT_MAX_RECORDS) + 1;
  const dialect = detectDialect(decoded.text, limit, options.cut);
  const [header, ...records] = dialect.split.records;
  if (!header || records.length === 0) {
    // A cut prefix may hold the header and only part of the first record: say so, not that the file has no records.
    if (options.cut) throw new SampleError(`The first ${bytes.length.toLocaleString('en-US')} bytes of the sample's text hold no whole record below its first line: a record (or a quoted field) is longer than that; init reads only that much`);
    throw new SampleError('The sample has no record below its first line: init needs a header and some records to see the shapes of the values');
  }
  const roles = assignRoles(header, records, dialect.delimiter);
  const decisions: Decision[] = [
    { subject: 'encoding', choice: decoded.encoding, why: decoded.why },
    { subject: 'delimiter', choice: showDelimiter(dialect.delimiter), why: dialect.why.delimiter },
    { subject: 'quote', choice: dialect.quote === '"' ? `'"'` : `"'"`, why: dialect.why.quote },
    { subject: 'header', choice: header.map((h) => h.trim()).join(', '), why: 'row 1 is the header: its values do not have the shapes of the values below them' },
    ...roles.decisions,
  ];
  const review = [
    ...(decoded.review ? [{ path: 'csv.encoding', message: decoded.review }] : []),
    ...roles.review,
    { path: 'destination', message: `a placeholder: set baseUrl to your cluster (e.g. https://eu.api.capillarytech.com) and the auth secrets' names (${PLACEHOLDER_DESTINATION.auth.usernameSecret}, ${PLACEHOLDER_DESTINATION.auth.passwordSecret})` },
    { path: 'source', message: `files uploaded under inbox/${options.name}/, any name (filePattern ".*"): narrow filePattern to the vendor's file names, or make it an SFTP source` },
  ];
  const flow = {
    name: options.name,
    source: { type: 's3', prefix: `inbox/${options.name}/`, filePattern: '.*' },
    ...(options.decrypt ? { decrypt: options.decrypt } : {}),
    csv: { delimiter: dialect.delimiter, quote: dialect.quote, encoding: decoded.encoding },
    mapping: roles.mapping,
    destination: structuredClone(PLACEHOLDER_DESTINATION),
  };
  return { document: { dataflows: [flow] }, decisions, review, encoding: decoded.encoding, records: records.length, limited: dialect.split.records.length >= limit, checked: checkedBytes(decoded.text, dialect.split, decoded.encoding) };
}

/** The text up to the end of the last record looked at, encoded back as the sample was (lossless for these three). */
function checkedBytes(text: string, split: SplitRecords, encoding: SampleEncoding): Buffer {
  // Past the last record looked at: a record cut by the prefix, or records beyond the limit (trailing blank lines aside).
  return Buffer.from(text.slice(0, split.end), encoding === 'utf-16le' ? 'utf16le' : encoding === 'latin1' ? 'latin1' : 'utf8');
}

interface Roles {
  mapping: Record<string, Record<string, string>>;
  decisions: Decision[];
  review: Review[];
}

const percent = (n: number, of: number) => `${n} of ${of}`;

function dateMapping(column: Column): Record<string, string> {
  return { column: column.name, format: column.date!.format, timeZone: 'UTC' };
}

/** DEFAULT_EXPIRY written in a date format, as a value of that column would be. */
function defaultExpiryIn(format: string): string {
  const ms = Date.parse(`${DEFAULT_EXPIRY}T00:00:00Z`);
  if (format === 'epoch-s') return String(ms / 1000);
  if (format === 'epoch-ms') return String(ms);
  if (format === 'iso') return `${DEFAULT_EXPIRY}T00:00:00Z`;
  return DateTime.fromMillis(ms, { zone: 'utc' }).toFormat(format, { locale: 'en-US' });
}

/**
 * The expiry mapping: its column, or, when the column is empty in some records (no expiry written: the badge does not
 * expire), an expression giving those DEFAULT_EXPIRY in the column's own format, so that the run does not reject them.
 */
function expiryMapping(column: Column): Record<string, string> {
  if (!column.cells.some((v) => v === '')) return dateMapping(column);
  const cell = `row[${JSON.stringify(column.name)}]`;
  return { expression: `${cell}.trim() != "" ? ${cell} : ${JSON.stringify(defaultExpiryIn(column.date!.format))}`, format: column.date!.format, timeZone: 'UTC' };
}

function dateDecision(field: string, column: Column, why: string): Decision {
  const d = column.date!;
  return { subject: field, choice: `${column.name} (${d.format})`, why: `${percent(d.fits, d.of)} values read as ${d.format}; ${why}` };
}

/** Review items for a mapped date column: a day/month order the values cannot tell, values the format leaves out. */
function dateReview(field: string, column: Column): Review[] {
  const d = column.date!;
  const items: Review[] = [];
  if (d.alsoFits) {
    items.push({ path: `mapping.${field}.format`, message: `every value of ${column.name} also reads as ${d.alsoFits} (no day above 12 in the sample): the draft takes ${d.format}; if the vendor writes it the other way, set "${d.alsoFits}"` });
  }
  if (d.twoDigitYear) {
    items.push({ path: `mapping.${field}.format`, message: `${column.name} writes two-digit years: the product reads 00–60 as 2000–2060 and 61–99 as 1961–1999; have the vendor write four digits if dates may fall outside that` });
  }
  if (d.fits < d.of) {
    items.push({ path: `mapping.${field}.format`, message: `${d.of - d.fits} of ${d.of} values of ${column.name} do not read as ${d.format}: the run rejects those records INVALID_DATE (see the sample check)` });
  }
  return items;
}

/** Which column feeds which field, with the reasons and what to review. */
function assignRoles(header: readonly string[], records: readonly string[][], delimiter: string): Roles {
  const columns = profile(records, header);
  const customer = pickCustomer(columns);
  if (!customer) {
    const zeros = columns.find((c) => share(c.values.filter((v) => /^0\d+$/.test(v)).length, c.values.length) >= 0.5);
    const why = zeros ? `; ${zeros.name} holds whole numbers with leading zeros (e.g. "${zeros.values.find((v) => /^0\d+$/.test(v))}"), which the product rejects INVALID_CUSTOMER_ID: have the vendor write them without` : '';
    throw new SampleError(`No column holds customer ids (positive whole numbers below 2^53) in most records: columns ${columns.map((c) => `"${c.name}"`).join(', ')}; the product sends a numeric customerId${why}`);
  }
  const badge = pickBadge(columns.filter((c) => c !== customer));
  const dateColumns = columns.filter((c) => c !== customer && c !== badge && isDate(c));
  if (dateColumns.length === 0) throw new SampleError(`No column holds dates in a format init knows (Connect+'s, ISO 8601, epoch seconds or milliseconds): columns ${columns.map((c) => `"${c.name}"`).join(', ')}`);
  const dates = pickDates(dateColumns);
  const typed = [
    { column: customer, kind: 'customer' as const },
    ...(badge ? [{ column: badge, kind: 'badge' as const }] : []),
    { column: dates.event, kind: 'date' as const },
    ...(dates.expiry ? [{ column: dates.expiry, kind: 'date' as const }] : []),
  ];
  const noHeader = headerless(header, typed, delimiter);
  if (noHeader) throw noHeader;
  repeatedOrEmpty(header, typed.map((t) => t.column));
  const decisions: Decision[] = [
    { subject: 'customerId', choice: customer.name, why: `${percent(customer.customers, customer.values.length)} values are positive whole numbers below 2^53${HINTS.customer.test(customer.name) ? '; its header names a member/customer/user' : ''}` },
    badge
      ? { subject: 'badgeMetaId', choice: badge.name, why: `${percent(badge.badges, badge.values.length)} values are 24 hexadecimal characters` }
      : { subject: 'badgeMetaId', choice: `"${PLACEHOLDER_BADGE_ID}" (a placeholder value)`, why: 'no column holds 24-hexadecimal badge ids' },
    dateDecision('earnEventDate', dates.event, dates.why.event),
    dates.expiry ? dateDecision('earnExpiresOn', dates.expiry, dates.why.expiry) : { subject: 'earnExpiresOn', choice: `"${DEFAULT_EXPIRY}" (a constant)`, why: 'the sample has one date column only' },
  ];
  const mapped = new Set(typed.map((t) => t.column));
  const unmapped = columns.filter((c) => !mapped.has(c));
  if (unmapped.length > 0) decisions.push({ subject: 'not mapped', choice: unmapped.map((c) => c.name).join(', '), why: dates.others.length > 0 ? `also dates: ${dates.others.map((c) => c.name).join(', ')}` : 'the API takes only the four fields above' });
  return { mapping: mappingOf(customer, badge, dates), decisions, review: [...rivalsReview(columns, customer, badge), ...rolesReview(badge, dates)] };
}

function mappingOf(customer: Column, badge: Column | undefined, dates: Dates): Record<string, Record<string, string>> {
  return {
    customerId: { column: customer.name },
    badgeMetaId: badge ? { column: badge.name } : { value: PLACEHOLDER_BADGE_ID },
    earnEventDate: dateMapping(dates.event),
    earnExpiresOn: dates.expiry ? expiryMapping(dates.expiry) : { value: DEFAULT_EXPIRY, format: 'yyyy-MM-dd', timeZone: 'UTC' },
  };
}

function rolesReview(badge: Column | undefined, dates: Dates): Review[] {
  const review: Review[] = [];
  if (!badge) review.push({ path: 'mapping.badgeMetaId', message: `no column holds badge ids (24 hexadecimal characters): the draft gives every record the placeholder "${PLACEHOLDER_BADGE_ID}"; set "value" to your badge's id (the API refuses the placeholder, 1054)` });
  review.push(...dateReview('earnEventDate', dates.event));
  if (dates.expiry) review.push(...dateReview('earnExpiresOn', dates.expiry));
  else review.push({ path: 'mapping.earnExpiresOn', message: `no expiry column: the draft gives every badge the expiry ${DEFAULT_EXPIRY}; set the date your program uses` });
  const emptyExpiries = dates.expiry?.cells.filter((v) => v === '').length ?? 0;
  if (emptyExpiries > 0) {
    review.push({ path: 'mapping.earnExpiresOn.expression', message: `${dates.expiry!.name} is empty in ${emptyExpiries} of ${dates.expiry!.cells.length} records: the draft's expression gives those the expiry ${DEFAULT_EXPIRY}; set the date your program uses` });
  }
  const unzoned = [dates.event, ...(dates.expiry ? [dates.expiry] : [])].filter((c) => !c.date!.zoned);
  if (unzoned.length > 0) {
    review.push({ path: 'mapping.*.timeZone', message: `${unzoned.map((c) => c.name).join(' and ')} carry no time zone: the draft reads them as UTC; set timeZone to the vendor's zone (e.g. "Asia/Kolkata") if they are local times` });
  }
  if (dates.conflict) review.push({ path: 'mapping.earnExpiresOn.column', message: dates.conflict });
  if (dates.others.length > 0) review.push({ path: 'mapping', message: `other date columns (${dates.others.map((c) => c.name).join(', ')}) are not mapped: check that ${dates.event.name} is the event and ${dates.expiry?.name ?? 'none'} the expiry` });
  return review;
}

/** A mapped column must be named once, and named: the run refuses a missing or repeated column. */
function repeatedOrEmpty(header: readonly string[], mapped: Column[]): void {
  for (const column of mapped) {
    if (column.name === '') throw new SampleError(`Column ${column.index + 1} holds the ${column.customers > 0 ? 'customer ids' : 'values to map'} but has no name in the header: the product maps columns by name; have the vendor name it`);
    if (header.filter((h) => h.trim() === column.name).length > 1) throw new SampleError(`The header names "${column.name}" more than once: the product cannot tell which one is meant (AMBIGUOUS_COLUMN); have the vendor rename one`);
  }
}
