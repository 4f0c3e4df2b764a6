import { isUtf8 } from 'node:buffer';
import { ERROR_CODES } from '../codes';
import { BadgesImportError } from '../errors';

/**
 * `badges-import init` cannot draft a configuration from this sample (not text, no delimiter, no header, no date…):
 * nothing is written, and the message says what was found and what to do.
 */
export class SampleError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SAMPLE_UNUSABLE;
}

/** The encodings init proposes: those of the schema's `csv.encoding` that a sample can be told apart by. */
export type SampleEncoding = 'utf-8' | 'latin1' | 'utf-16le';

/** A decoded sample: its text (BOM dropped) and why it was read in that encoding. */
export interface DecodedSample {
  encoding: SampleEncoding;
  text: string;
  why: string;
  /** Worth a look before the draft is used (e.g. Windows-1252 characters read as Latin-1). */
  review?: string;
}

/** How many leading bytes judge a NUL pattern: enough for a few records, small enough to stay quick. */
const NUL_WINDOW = 4096;

function nulPattern(bytes: Buffer): { odd: number; even: number; pairs: number } {
  const window = bytes.subarray(0, Math.min(bytes.length, NUL_WINDOW) & ~1);
  let odd = 0;
  let even = 0;
  for (let i = 0; i < window.length; i++) {
    if (window[i] !== 0) continue;
    if (i % 2 === 0) even++;
    else odd++;
  }
  return { odd, even, pairs: window.length / 2 };
}

/** How many bytes at the end of a cut prefix may be the start of a UTF-8 character that the cut split. */
function splitUtf8Tail(bytes: Buffer): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back]!;
    if ((byte & 0xc0) === 0x80) continue;
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return needed > back ? back : 0;
  }
  return 0;
}

function utf16(bytes: Buffer, bom: boolean): DecodedSample {
  const body = bom ? bytes.subarray(2) : bytes;
  const text = body.subarray(0, body.length & ~1).toString('utf16le');
  if (text.includes('\u0000')) throw new SampleError('The sample looks like UTF-16LE but holds NUL characters: it is binary data, not a delimited text file');
  return { encoding: 'utf-16le', text, why: bom ? 'it starts with the UTF-16LE byte-order mark (FF FE)' : 'no byte-order mark, but every other byte is NUL: UTF-16LE text' };
}

/**
 * Tells the sample's encoding among those the product reads (utf-8, latin1, utf-16le) and decodes it: a UTF-16LE
 * byte-order mark or NUL pattern is UTF-16LE; bytes that are all valid UTF-8 are UTF-8 (a BOM is allowed); any other
 * bytes are Latin-1. `cut` says the bytes are a prefix of the file (a character may be split at the end).
 *
 * @throws SampleError for UTF-16BE, and for NUL bytes in what is not UTF-16 (binary data).
 */
export function decodeSample(bytes: Buffer, cut: boolean): DecodedSample {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return utf16(bytes, true);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) throw new SampleError('The sample is UTF-16BE (it starts with its byte-order mark FE FF): the product reads utf-8, latin1 and utf-16le; have the vendor save it as UTF-8');
  const nuls = nulPattern(bytes);
  if (nuls.pairs > 0 && nuls.odd > nuls.pairs * 0.4 && nuls.even < nuls.pairs * 0.05) return utf16(bytes, false);
  if (nuls.pairs > 0 && nuls.even > nuls.pairs * 0.4 && nuls.odd < nuls.pairs * 0.05) throw new SampleError('The sample looks like UTF-16BE text (NUL before every character): the product reads utf-8, latin1 and utf-16le; have the vendor save it as UTF-8');
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new SampleError(`The sample holds a NUL byte at byte ${nul}: it is binary data, not a delimited text file`);
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const whole = cut ? bytes.subarray(0, bytes.length - splitUtf8Tail(bytes)) : bytes;
  if (isUtf8(whole)) {
    const text = whole.toString('utf8').replace(/^\uFEFF/, '');
    const ascii = !/[^\x00-\x7f]/.test(text);
    const why = `${bom ? 'a UTF-8 byte-order mark, and ' : ''}every byte is valid UTF-8${ascii ? ' (ASCII only: latin1 would read it the same)' : ''}`;
    return { encoding: 'utf-8', text, why };
  }
  const at = firstInvalidUtf8(whole);
  const text = bytes.toString('latin1');
  const c1 = bytes.findIndex((b) => b >= 0x80 && b <= 0x9f);
  return {
    encoding: 'latin1',
    text,
    why: `byte ${at} (0x${(bytes[at] ?? 0).toString(16)}) is not valid UTF-8: read as Latin-1 (ISO-8859-1)`,
    ...(c1 >= 0
      ? { review: `csv.encoding: byte ${c1} (0x${bytes[c1]!.toString(16)}) is a Windows-1252 character (€, curly quotes, …) that Latin-1 reads as a control character; if the text matters, have the vendor save the file as UTF-8` }
      : {}),
  };
}

function firstInvalidUtf8(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! < 0x80) continue;
    const fits = [2, 3, 4].find((n) => i + n <= bytes.length && isUtf8(bytes.subarray(i, i + n)));
    if (fits === undefined) return i;
    i += fits - 1;
  }
  return 0;
}

/** Records of a sample, split by one candidate dialect. */
export interface SplitRecords {
  records: string[][];
  /** Fields that were quoted (opened by the quote character). */
  quotedFields: number;
  /** A quote closed a field and was followed by something other than a delimiter or line end: the guard refuses that. */
  malformed: number;
  /** Offset in the text just past the last whole record (where a cut prefix may be cut again safely). */
  end: number;
}

/**
 * Splits text into records as the product's text guard and parser read them: a quote opens a quoted field only as a
 * field's first character, a doubled quote inside one is one quote, `\r\n`, `\n` and `\r` end a line, blank lines are
 * not records. Stops after `limit` records; with `cut`, the last record may be incomplete and is dropped.
 */
export function splitRecords(text: string, delimiter: string, quote: string, limit: number, cut: boolean): SplitRecords {
  const out: SplitRecords = { records: [], quotedFields: 0, malformed: 0, end: 0 };
  let fields: string[] = [];
  let field = '';
  let i = 0;
  const endRecord = (at: number) => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) out.records.push(fields);
    fields = [];
    field = '';
    out.end = at;
  };
  while (i < text.length && out.records.length < limit) {
    const c = text[i]!;
    if (c === quote && field === '') {
      const close = closingQuote(text, i + 1, quote);
      if (close < 0) break; // an open quote running to the end: a cut record, or a malformed file
      out.quotedFields++;
      field = text.slice(i + 1, close).split(quote + quote).join(quote);
      i = close + 1;
      const next = text[i];
      if (next !== undefined && next !== delimiter && next !== '\n' && next !== '\r') out.malformed++;
      continue;
    }
    if (c === delimiter) {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      i += c === '\r' && text[i + 1] === '\n' ? 1 : 0;
      endRecord(i + 1);
    } else field += c;
    i++;
  }
  if (i >= text.length && !cut && (field !== '' || fields.length > 0)) endRecord(text.length);
  return out;
}

function closingQuote(text: string, from: number, quote: string): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] !== quote) continue;
    if (text[i + 1] === quote) i++;
    else return i;
  }
  return -1;
}

/** The delimiters init considers, as Connect+'s files use them. */
export const DELIMITERS = [',', ';', '|', '\t'] as const;
const QUOTES = ['"', "'"] as const;

/** How the text is delimited and quoted, with the records split that way. */
export interface Dialect {
  delimiter: string;
  quote: string;
  split: SplitRecords;
  why: { delimiter: string; quote: string };
}

/** A printable name for a delimiter. */
export function showDelimiter(d: string): string {
  return d === '\t' ? 'tab' : `"${d}"`;
}

interface Candidate {
  delimiter: string;
  width: number;
  consistent: number;
  split: SplitRecords;
}

function candidate(text: string, delimiter: string, quote: string, limit: number, cut: boolean): Candidate {
  const split = splitRecords(text, delimiter, quote, limit, cut);
  const width = split.records[0]?.length ?? 0;
  const rest = split.records.slice(1);
  const same = rest.filter((r) => r.length === width).length;
  const consistent = rest.length === 0 ? (width > 1 ? 1 : 0) : (same - split.malformed) / rest.length;
  return { delimiter, width, consistent, split };
}

/**
 * Picks the delimiter whose split gives the most records with the header's field count (quotes respected), among
 * those giving two fields or more, then the quote character, by the first thousand records; and splits up to `limit`
 * records that way.
 *
 * @throws SampleError when no delimiter splits the sample into two fields or more.
 */
export function detectDialect(text: string, limit: number, cut: boolean): Dialect {
  const chosen = choose(text, Math.min(limit, DIALECT_RECORDS), cut);
  const split = limit > DIALECT_RECORDS ? splitRecords(text, chosen.delimiter, chosen.quote, limit, cut) : chosen.split;
  return { ...chosen, split };
}

/** Records that decide the dialect: the first thousand show it as well as all of them, at a fifth of the cost. */
const DIALECT_RECORDS = 1000;

function choose(text: string, limit: number, cut: boolean): Dialect {
  const candidates = DELIMITERS.map((d) => candidate(text, d, '"', limit, cut));
  const usable = candidates.filter((c) => c.width >= 2).sort((a, b) => b.consistent - a.consistent || b.width - a.width);
  const best = usable[0];
  if (!best) {
    throw new SampleError(`No delimiter splits the sample's first line into fields (tried ${DELIMITERS.map(showDelimiter).join(', ')}): a badges file needs at least a customer id and a date column`);
  }
  const others = candidates.filter((c) => c !== best).map((c) => `${showDelimiter(c.delimiter)} ${c.width} field${c.width === 1 ? '' : 's'}`);
  const share = `${Math.round(best.consistent * 1000) / 10}%`;
  const delimiterWhy = `the header has ${best.width} fields and ${best.consistent === 1 ? 'every record has as many' : `${share} of records have as many`} (${others.join(', ')} in the header)`;
  const single = candidate(text, best.delimiter, "'", limit, cut);
  if (best.split.quotedFields === 0 && single.split.quotedFields > 0 && single.width === best.width && single.consistent >= best.consistent) {
    return { delimiter: best.delimiter, quote: "'", split: single.split, why: { delimiter: delimiterWhy, quote: `${single.split.quotedFields} fields of the first ${single.split.records.length} rows are quoted with ' and none with "` } };
  }
  const quoteWhy = best.split.quotedFields > 0 ? `${best.split.quotedFields} fields of the first ${best.split.records.length} rows are quoted with it` : 'no field is quoted: the default';
  return { delimiter: best.delimiter, quote: QUOTES[0], split: best.split, why: { delimiter: delimiterWhy, quote: quoteWhy } };
}
