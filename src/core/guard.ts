import { isUtf8 } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { Dataflow } from '../config/schema';
import { VALIDATION_CODES } from '../codes';
import { ConfigError, EncodingError, MalformedCsvError } from '../errors';

/** The encodings a dataflow may declare (`csv.encoding`). */
export type DeclaredEncoding = Dataflow['csv']['encoding'];

/**
 * Stands for a record that was longer than the limit: the text guard puts this line in its place (a NUL never occurs
 * in text it lets through), and the stage rejects that record as RECORD_TOO_LONG.
 */
export const TOO_LONG_MARK = `\u0000${VALIDATION_CODES.RECORD_TOO_LONG}\u0000`;

const BOMS: Array<{ bytes: number[]; name: string }> = [
  { bytes: [0xff, 0xfe], name: 'UTF-16LE' },
  { bytes: [0xfe, 0xff], name: 'UTF-16BE' },
];

function startsWith(buffer: Buffer, bytes: number[]): boolean {
  return bytes.every((b, i) => buffer[i] === b);
}

/**
 * Where the text read starts: at the file start (offset 0), or a range further in (parallel staging) whose
 * messages name absolute byte offsets and lines.
 */
export interface TextStart {
  /** Absolute offset of the first byte read, for messages. */
  offset: number;
  /** The text starts at the file's first byte: a byte-order mark is looked for there. */
  atFileStart: boolean;
  /** Line of the first byte read (1-based), for messages. @default 1 */
  firstLine?: number;
}

const FILE_START: TextStart = { offset: 0, atFileStart: true, firstLine: 1 };

/** How many bytes at the end of `buffer` may be the start of a UTF-8 sequence that the next chunk completes. */
function incompleteUtf8Tail(buffer: Buffer): number {
  for (let back = 1; back <= Math.min(3, buffer.length); back++) {
    const byte = buffer[buffer.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return needed > back ? back : 0;
  }
  return 0;
}

/**
 * Decodes a delimited file into UTF-8 as declared, and refuses what is not text in that encoding: a UTF-16
 * byte-order mark in a file declared otherwise, NUL bytes (binary data, or UTF-16 without a mark), bytes that are not
 * UTF-8 in a file declared UTF-8 (most often Latin-1 / Windows-1252). The message names the likely encoding and where
 * the trouble starts. Memory: one chunk.
 */
export function decodeText(encoding: DeclaredEncoding, from: TextStart = FILE_START): Transform {
  let offset = from.offset;
  let carry = Buffer.alloc(0);
  // Byte-order marks are looked for at the file start only: a range further in starts with a record.
  let first = from.atFileStart;
  const decoder = encoding === 'utf-16le' ? new StringDecoder('utf16le') : undefined;
  let highSurrogate = '';
  const binary = (at: number) =>
    new EncodingError(
      `The file holds a NUL byte at byte ${at}: it is binary data, or UTF-16 text without a byte-order mark (if so, save it as UTF-8 or declare csv.encoding "utf-16le"); nothing was sent`,
    );
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        if (first) {
          first = false;
          const bom = BOMS.find((b) => startsWith(chunk, b.bytes));
          if (encoding === 'utf-16le') {
            if (bom?.name === 'UTF-16BE') throw new EncodingError('The file is UTF-16BE (it starts with its byte-order mark), not the declared utf-16le; nothing was sent');
            if (bom) chunk = chunk.subarray(2);
          } else if (bom) {
            throw new EncodingError(`The file is ${bom.name} (it starts with its byte-order mark), not the declared ${encoding}: declare csv.encoding "utf-16le" or have it saved as UTF-8; nothing was sent`);
          }
        }
        if (decoder) {
          let text = highSurrogate + decoder.write(chunk);
          highSurrogate = '';
          // The decoder may end a piece with the first half of a surrogate pair: keep it for the second.
          const last = text.charCodeAt(text.length - 1);
          if (last >= 0xd800 && last <= 0xdbff) {
            highSurrogate = text.slice(-1);
            text = text.slice(0, -1);
          }
          const nul = text.indexOf('\u0000');
          if (nul >= 0) throw binary(offset + nul * 2);
          offset += chunk.length;
          callback(null, Buffer.from(text, 'utf8'));
          return;
        }
        const nul = chunk.indexOf(0);
        if (nul >= 0) throw binary(offset + nul);
        if (encoding === 'latin1') {
          offset += chunk.length;
          callback(null, Buffer.from(chunk.toString('latin1'), 'utf8'));
          return;
        }
        const data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
        const tail = incompleteUtf8Tail(data);
        const whole = data.subarray(0, data.length - tail);
        if (!isUtf8(whole)) throw notUtf8(whole, offset - carry.length);
        carry = Buffer.from(data.subarray(data.length - tail));
        offset += chunk.length;
        callback(null, whole);
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      if (decoder) {
        const rest = highSurrogate + decoder.end();
        callback(null, rest ? Buffer.from(rest, 'utf8') : undefined);
      } else if (carry.length > 0) {
        callback(new EncodingError(`The file ends in the middle of a UTF-8 character (byte ${offset - carry.length}): it is cut short or not UTF-8; nothing was sent`));
      } else {
        callback();
      }
    },
  });
}

function notUtf8(data: Buffer, base: number): EncodingError {
  let at = 0;
  // Find the first byte where decoding fails, for the message.
  for (let i = 0; i < data.length; i++) {
    if (data[i]! < 0x80) continue;
    const end = Math.min(data.length, i + 4);
    let ok = false;
    for (let j = i + 2; j <= end; j++) {
      if (isUtf8(data.subarray(i, j))) {
        ok = true;
        i = j - 1;
        break;
      }
    }
    if (!ok) {
      at = i;
      break;
    }
  }
  const byte = data[at] ?? 0;
  const line = data.subarray(0, at).toString('latin1').split('\n').length;
  return new EncodingError(
    `The file is not UTF-8: byte ${base + at} (0x${byte.toString(16).padStart(2, '0')}, line ${line} of the part read) is not valid UTF-8. It is most likely Latin-1 / Windows-1252: declare csv.encoding "latin1", or have it saved as UTF-8; nothing was sent`,
  );
}


/** The csv settings the record guard works with. */
export type GuardSettings = Pick<Dataflow['csv'], 'delimiter' | 'quote' | 'maxRecordBytes'>;

// What a byte is to the guard. Delimiter and quote are ASCII, so they never occur inside a multi-byte character.
const CONTENT = 0;
const DELIMITER = 1;
const QUOTE = 2;
const LINE_END = 3;
const CR = 0x0d;
const LF = 0x0a;

// Where the guard is. Field content leaves UNQUOTED and QUOTED (the two below 2) as they are: the fast path.
/** Inside a field that did not start with a quote: a quote here is a literal character. */
const UNQUOTED = 0;
/** Inside a field that started with a quote: delimiters and line ends are data. */
const QUOTED = 1;
/** At the start of a line: a line end here ends a blank line, which is not a record. */
const RECORD_START = 2;
/** Right after a delimiter: a quote here opens a quoted field. */
const FIELD_START = 3;
/** Right after a quote inside a quoted field: a second quote makes one literal quote; otherwise the field is closed. */
const AFTER_QUOTE = 4;

const UTF8_BOM = [0xef, 0xbb, 0xbf];
const MARK_LINE = Buffer.from(`${TOO_LONG_MARK}\n`);
const MARK = Buffer.from(TOO_LONG_MARK);

/**
 * The text guard: the one place that decides where each record of a file begins and ends, before the parser reads
 * it. The parser (openCsv) is configured to read the same boundaries, and the stage checks that both counted the same
 * records.
 *
 * The rule (Python's csv module and csv-parse's `relax_quotes` read a file the same way):
 * - a quote opens a quoted field only as the very first character of a field (at the start of a line or right after
 *   the delimiter); anywhere else it is a literal character (`TV 55" promo` stays `TV 55" promo`);
 * - inside a quoted field a doubled quote is one literal quote, and delimiters and line ends are data;
 * - the quote closing a quoted field is followed by the delimiter, a line end or the end of the file; anything else
 *   (`"x"y`), or a quoted field never closed, fails the file (MalformedCsvError, naming the line): its boundaries
 *   cannot be trusted;
 * - `\r\n`, `\n` and `\r` all end a line, also mixed in one file; blank lines are not records;
 * - one UTF-8 byte-order mark at the start of the file is dropped (the parser is told not to look for one, so both
 *   read the same text).
 *
 * Every record longer than `csv.maxRecordBytes` (its own bytes, quoted line ends included, its final line end
 * excluded) is replaced by a line holding TOO_LONG_MARK, so that it is rejected on its own and the rest of the file
 * proceeds; memory holds at most one record. Works on UTF-8.
 */
export class RecordGuard extends Transform {
  /** Records delimited so far, the header included when the text holds it. */
  #records = 0;
  /** 1 when the text starts with the header (the whole file), 0 for a range after it. */
  readonly #headerRecords: number;
  #state = RECORD_START;
  /** Line of the text being read (`\r\n` is one line end), for messages. */
  #line: number;
  /** Line where the open quoted field started, for the message if it is never closed. */
  #quoteLine = 0;
  /** The last byte of the previous chunk: a `\n` after a `\r` does not start another line. */
  #lastByte = -1;
  /** The start of the current record, held back until it ends (at most maxRecordBytes). */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The current record is over the limit: its bytes are dropped until it ends. */
  #dropping = false;
  /** The file's first bytes while it is not known yet whether they are a byte-order mark; undefined once it is. */
  #head: Buffer | undefined;
  readonly #kinds = new Uint8Array(256);
  readonly #maxBytes: number;

  /**
   * `range`: the text is a range of the file after its header, starting just after a record's line end (parallel
   * staging): lines are counted from its firstLine, a BOM is dropped only at the file start, and no header is in it.
   * @throws ConfigError when the delimiter or the quote is not one ASCII character, a line end, or both the same.
   */
  constructor(csv: GuardSettings, range?: TextStart) {
    super();
    checkDialect(csv);
    this.#headerRecords = range ? 0 : 1;
    this.#line = range?.firstLine ?? 1;
    this.#head = !range || range.atFileStart ? Buffer.alloc(0) : undefined;
    this.#kinds[csv.delimiter.charCodeAt(0)] = DELIMITER;
    this.#kinds[csv.quote.charCodeAt(0)] = QUOTE;
    this.#kinds[CR] = LINE_END;
    this.#kinds[LF] = LINE_END;
    this.#maxBytes = csv.maxRecordBytes;
  }

  /**
   * Data records delimited: after the header, blank lines not counted, a record over the limit counted once. Final
   * once the stream has ended; the parser must have read exactly as many.
   */
  get recordsSeen(): number {
    return Math.max(0, this.#records - this.#headerRecords);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const text = this.#afterBom(chunk);
      if (text) this.#scan(text);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      // A file shorter than a byte-order mark.
      if (this.#head && this.#head.length > 0) this.#scan(this.#head);
      if (this.#state === QUOTED) throw unclosedQuote(this.#quoteLine);
      if (this.#state !== RECORD_START) {
        // The last record has no line end.
        this.#records += 1;
        if (this.#dropping) this.push(MARK);
        else for (const part of this.#pending) this.push(part);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** The chunk without a leading byte-order mark; undefined while the first bytes may still be one. */
  #afterBom(chunk: Buffer): Buffer | undefined {
    if (!this.#head) return chunk;
    const head = this.#head.length > 0 ? Buffer.concat([this.#head, chunk]) : chunk;
    for (let i = 0; i < Math.min(3, head.length); i++) {
      if (head[i] !== UTF8_BOM[i]) {
        this.#head = undefined;
        return head;
      }
    }
    if (head.length < 3) {
      this.#head = Buffer.from(head);
      return undefined;
    }
    this.#head = undefined;
    return head.subarray(3);
  }

  /** Reads one chunk: passes whole records on, replaces those over the limit, holds back the one not ended yet. */
  #scan(chunk: Buffer): void {
    const kinds = this.#kinds;
    const max = this.#maxBytes;
    const n = chunk.length;
    let state = this.#state;
    let line = this.#line;
    /** Where the current record starts in this chunk (0 when it started in an earlier one). */
    let recordStart = 0;
    /** Bytes before this that have been pushed (or dropped). */
    let emitFrom = 0;
    for (let i = 0; i < n; i++) {
      const kind = kinds[chunk[i]!]!;
      if (kind === CONTENT) {
        if (state > QUOTED) {
          if (state === AFTER_QUOTE) throw badClose(chunk[i]!, line);
          state = UNQUOTED;
        }
      } else if (kind === DELIMITER) {
        if (state !== QUOTED) state = FIELD_START;
      } else if (kind === QUOTE) {
        if (state === QUOTED) state = AFTER_QUOTE;
        else if (state === AFTER_QUOTE) state = QUOTED;
        else if (state !== UNQUOTED) {
          state = QUOTED;
          this.#quoteLine = line;
        }
      } else {
        // A line end; `\r\n` is one.
        if (chunk[i] === CR || (i > 0 ? chunk[i - 1] : this.#lastByte) !== CR) line += 1;
        if (state === QUOTED) continue;
        if (state !== RECORD_START) {
          // A record ends here.
          this.#records += 1;
          if (this.#dropping || this.#pendingBytes + (i - recordStart) > max) {
            if (recordStart > emitFrom) this.push(chunk.subarray(emitFrom, recordStart));
            this.push(MARK_LINE);
            emitFrom = i + 1;
            this.#dropping = false;
          } else if (this.#pendingBytes > 0) {
            // It started in an earlier chunk: nothing of this chunk has been pushed yet (recordStart is 0).
            for (const part of this.#pending) this.push(part);
          }
          if (this.#pendingBytes > 0) {
            this.#pending = [];
            this.#pendingBytes = 0;
          }
          state = RECORD_START;
        }
        recordStart = i + 1;
      }
    }
    if (recordStart > emitFrom) this.push(chunk.subarray(emitFrom, recordStart));
    const rest = n - recordStart;
    if (!this.#dropping && rest > 0) {
      if (this.#pendingBytes + rest > max) {
        this.#dropping = true;
        this.#pending = [];
        this.#pendingBytes = 0;
      } else {
        // A copy: a view would keep the whole chunk in memory.
        this.#pending.push(Buffer.from(chunk.subarray(recordStart)));
        this.#pendingBytes += rest;
      }
    }
    this.#state = state;
    this.#line = line;
    if (n > 0) this.#lastByte = chunk[n - 1]!;
  }
}

/**
 * Checks that the delimiter and quote can be read bytewise: one ASCII character each, not a line end, not the same.
 * @throws ConfigError naming every problem.
 */
export function checkDialect(csv: Pick<GuardSettings, 'delimiter' | 'quote'>): void {
  const problems: string[] = [];
  for (const [name, value] of [['csv.delimiter', csv.delimiter], ['csv.quote', csv.quote]] as const) {
    const code = value.charCodeAt(0);
    if (value.length !== 1 || code === 0 || code >= 0x80 || code === CR || code === LF) {
      problems.push(`${name}: must be one ASCII character other than a line end (got ${JSON.stringify(value)})`);
    }
  }
  if (csv.delimiter === csv.quote) problems.push('csv.quote: must differ from csv.delimiter');
  if (problems.length > 0) throw new ConfigError(problems);
}

/** The file fails: a quoted field that starts at `line` is never closed. */
export function unclosedQuote(line: number): MalformedCsvError {
  return new MalformedCsvError(`The file is not well-formed CSV at line ${line}: the quoted field that starts there is never closed (a quote inside a quoted field must be doubled); nothing was sent`);
}

/** The file fails: a quoted field at `line` is closed by a quote followed by `byte`, not by a delimiter or line end. */
export function badClose(byte: number, line: number): MalformedCsvError {
  const what = byte >= 0x80 ? 'a non-ASCII character' : byte === 0x20 ? 'a space' : byte > 0x20 && byte < 0x7f ? `"${String.fromCharCode(byte)}"` : `the byte 0x${byte.toString(16).padStart(2, '0')}`;
  return new MalformedCsvError(
    `The file is not well-formed CSV at line ${line}: a quoted field is closed by a quote followed by ${what}, where only the delimiter or a line end may follow (a quote inside a quoted field must be doubled; a quote that does not start a field needs none); nothing was sent`,
  );
}

/** The record guard of a file (or of a range of it after the header): see RecordGuard. */
export function limitRecords(csv: GuardSettings, range?: TextStart): RecordGuard {
  return new RecordGuard(csv, range);
}

/**
 * The file (or a range of it after the header, see RecordGuard) as guarded UTF-8 text: decoded and checked
 * (decodeText), then delimited into records (RecordGuard).
 */
export function guardedText(input: Readable, csv: GuardSettings & Pick<Dataflow['csv'], 'encoding'>, range?: TextStart): RecordGuard {
  const decode = decodeText(csv.encoding, range);
  const guard = limitRecords(csv, range);
  input.on('error', (error) => decode.destroy(error));
  decode.on('error', (error) => guard.destroy(error));
  return input.pipe(decode).pipe(guard);
}
