import { isUtf8 } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { Dataflow } from '../config/schema';
import { EncodingError, MalformedCsvError } from '../errors';

/** The encodings a dataflow may declare (`csv.encoding`). */
export type DeclaredEncoding = Dataflow['csv']['encoding'];

/**
 * Stands for a record that was longer than the limit: the text guard puts this line in its place (a NUL never occurs
 * in text it lets through), and the stage rejects that record as RECORD_TOO_LONG.
 */
export const TOO_LONG_MARK = '\u0000RECORD_TOO_LONG\u0000';

const BOMS: Array<{ bytes: number[]; name: string }> = [
  { bytes: [0xff, 0xfe], name: 'UTF-16LE' },
  { bytes: [0xfe, 0xff], name: 'UTF-16BE' },
];

function startsWith(buffer: Buffer, bytes: number[]): boolean {
  return bytes.every((b, i) => buffer[i] === b);
}

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
export function decodeText(encoding: DeclaredEncoding): Transform {
  let offset = 0;
  let carry = Buffer.alloc(0);
  let first = true;
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

/**
 * Replaces every record longer than `maxBytes` (quotes respected: a quoted field may hold newlines) by a line holding
 * TOO_LONG_MARK, so that the record is rejected on its own and the rest of the file proceeds. Holds at most one
 * record (`maxBytes`) in memory. Works on UTF-8 (delimiter and quote are ASCII, so they never occur inside a
 * multi-byte character).
 */
export function limitRecords(maxBytes: number, quote: string): Transform {
  const q = quote.charCodeAt(0);
  const NL = 0x0a;
  let inQuotes = false;
  /** Bytes of the current (incomplete) record, held back until it ends. */
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let dropping = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const out: Buffer[] = [];
      let start = 0; // where the current record starts in this chunk
      let pos = 0;
      while (pos < chunk.length) {
        // Jump to the next byte that matters: a quote, or (outside quotes) a line end.
        const nextQuote = chunk.indexOf(q, pos);
        const nextLine = inQuotes ? -1 : chunk.indexOf(NL, pos);
        let at: number;
        if (nextLine >= 0 && (nextQuote < 0 || nextLine < nextQuote)) {
          at = nextLine;
          // A record ends here.
          if (!dropping && pendingBytes + (at + 1 - start) > maxBytes) dropping = true;
          if (dropping) out.push(Buffer.from(`${TOO_LONG_MARK}\n`));
          else out.push(...pending, chunk.subarray(start, at + 1));
          dropping = false;
          pending = [];
          pendingBytes = 0;
          start = at + 1;
        } else if (nextQuote >= 0) {
          at = nextQuote;
          inQuotes = !inQuotes;
        } else {
          break;
        }
        pos = at + 1;
        if (!dropping && pendingBytes + (pos - start) > maxBytes) dropping = true;
      }
      if (!dropping && pendingBytes + (chunk.length - start) > maxBytes) dropping = true;
      if (dropping) {
        pending = [];
        pendingBytes = 0;
      } else if (start < chunk.length) {
        const rest = chunk.subarray(start);
        pending.push(Buffer.from(rest));
        pendingBytes += rest.length;
      }
      callback(null, out.length > 0 ? Buffer.concat(out) : undefined);
    },
    flush(callback: TransformCallback) {
      // A quote opened in a dropped record and never closed would otherwise swallow the rest of the file as that one
      // record: record boundaries cannot be trusted, so the file fails, as csv-parse fails it when nothing was dropped.
      if (dropping && inQuotes) {
        callback(new MalformedCsvError(`The file is not well-formed CSV: a quote opened in a record longer than csv.maxRecordBytes (${maxBytes} bytes) is never closed`));
        return;
      }
      callback(null, dropping ? Buffer.from(TOO_LONG_MARK) : pending.length > 0 ? Buffer.concat(pending) : undefined);
    },
  });
}

/** The file as guarded UTF-8 text: decoded and checked (decodeText), long records replaced (limitRecords). */
export function guardedText(input: Readable, encoding: DeclaredEncoding, maxRecordBytes: number, quote: string): Readable {
  const decode = decodeText(encoding);
  const limit = limitRecords(maxRecordBytes, quote);
  input.on('error', (error) => decode.destroy(error));
  decode.on('error', (error) => limit.destroy(error));
  return input.pipe(decode).pipe(limit);
}
