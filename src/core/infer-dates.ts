import { compileDateParser } from './dates';

/**
 * The date formats init tries, in the order it prefers them when several read every value: Connect+'s own (its
 * sibling templates offer these), the common variants around them, then ISO 8601 and epoch seconds or milliseconds.
 */
export const CANDIDATE_DATE_FORMATS = [
  'yyyy-MM-dd HH:mm:ss',
  'yyyy-MM-dd-HH:mm:ss',
  'yyyy-MM-dd HH:mm',
  'yyyy-MM-dd',
  'yyyy/MM/dd HH:mm:ss',
  'yyyy/MM/dd',
  'dd-MM-yyyy HH:mm:ss',
  'MM-dd-yyyy HH:mm:ss',
  'dd-MM-yyyy HH:mm',
  'dd-MM-yyyy',
  'MM-dd-yyyy',
  'dd/MM/yyyy HH:mm:ss',
  'MM/dd/yyyy HH:mm:ss',
  'dd/MM/yyyy HH:mm',
  'MM/dd/yyyy HH:mm',
  'dd/MM/yyyy',
  'MM/dd/yyyy',
  'd/M/yyyy H:mm:ss',
  'M/d/yyyy H:mm:ss',
  'd/M/yyyy H:mm',
  'M/d/yyyy H:mm',
  'd/M/yyyy',
  'M/d/yyyy',
  'dd.MM.yyyy HH:mm:ss',
  'dd.MM.yyyy',
  'yyyy-dd-MM HH:mm:ss',
  'yyyyMMdd',
  'yyyyMMddHHmmss',
  // Database and spreadsheet exports: fractions of a second, an offset, a 12-hour clock, a month name, two-digit years.
  'yyyy-MM-dd HH:mm:ss.SSS',
  'yyyy-MM-dd HH:mm:ssZZ',
  'MM/dd/yyyy hh:mm:ss a',
  'dd/MM/yyyy hh:mm:ss a',
  'MM/dd/yyyy hh:mm a',
  'dd/MM/yyyy hh:mm a',
  'dd-MMM-yyyy HH:mm:ss',
  'dd-MMM-yyyy',
  'dd/MM/yy',
  'MM/dd/yy',
  'd/M/yy',
  'M/d/yy',
  'dd-MM-yy',
  'MM-dd-yy',
  'dd.MM.yy',
  'iso',
  'epoch-s',
  'epoch-ms',
] as const;

/** Epoch values are taken for dates only between these instants (2000 to 2100): ids and amounts rarely fall there. */
const EPOCH_FROM_S = 946_684_800;
const EPOCH_TO_S = 4_102_444_800;

/** What one column's values say as dates. */
export interface DateGuess {
  format: string;
  /** Distinct non-empty values the format reads (the product's own parser decides). */
  fits: number;
  /** Distinct non-empty values looked at. */
  of: number;
  /** Another format that reads exactly as many values (day and month swapped): a choice to review. */
  alsoFits?: string;
  /** The values carry their own offset (epoch, or ISO with Z or ±hh:mm): the time zone does not change the instant. */
  zoned: boolean;
  /** The format has a two-digit year: Luxon reads 00–60 as 2000–2060 and 61–99 as 1961–1999. */
  twoDigitYear?: true;
}

/** A regular expression for the shape of a token format, to skip formats that cannot match before parsing. */
function shapeOf(format: string): RegExp {
  if (format === 'iso') return /^\d{4}-\d{2}-\d{2}T\d{2}/i;
  if (format === 'epoch-s') return /^\d{9,11}$/;
  if (format === 'epoch-ms') return /^\d{12,14}$/;
  const tokens: Record<string, string> = {
    yyyy: '\\d{4}', yy: '\\d{2}', MMM: '[A-Za-z]{3}', MM: '\\d{2}', dd: '\\d{2}', HH: '\\d{2}', hh: '\\d{2}', mm: '\\d{2}', ss: '\\d{2}', SSS: '\\d{3}',
    ZZ: '[+-]\\d{2}:\\d{2}', a: '[AaPp][Mm]', M: '\\d{1,2}', d: '\\d{1,2}', H: '\\d{1,2}',
  };
  const source = format.replace(/yyyy|yy|MMM|MM|dd|HH|hh|mm|ss|SSS|ZZ|a|M|d|H|[.*+?^${}()|[\]\\/]/g, (token) => tokens[token] ?? `\\${token}`);
  return new RegExp(`^${source}$`);
}

function epochInRange(format: string, value: string): boolean {
  const seconds = format === 'epoch-ms' ? Number(value) / 1000 : Number(value);
  return seconds >= EPOCH_FROM_S && seconds <= EPOCH_TO_S;
}

/** How many of the values a format reads, by the product's own parser (epochs only within 2000–2100). */
function fitsOf(format: string, values: readonly string[]): number {
  const shape = shapeOf(format);
  if (!values.some((v) => shape.test(v))) return 0;
  const parse = compileDateParser(format, 'UTC');
  const epoch = format.startsWith('epoch-');
  return values.filter((v) => shape.test(v) && parse(v).ok && (!epoch || epochInRange(format, v))).length;
}

/** The same format with day and month swapped (`dd/MM/yyyy` → `MM/dd/yyyy`), or undefined when it has no day and month. */
export function swapDayMonth(format: string): string | undefined {
  // A month name (MMM) is no day: there is nothing to swap.
  if (format === 'iso' || format.startsWith('epoch-') || !/d/.test(format) || !/M/.test(format) || /MMM/.test(format)) return undefined;
  return format.replace(/d+|M+/g, (token) => (token[0] === 'd' ? 'M'.repeat(token.length) : 'd'.repeat(token.length)));
}

/**
 * Guesses the format of a column of dates from its distinct non-empty values: the candidate that reads the most of
 * them (ties go to the earlier candidate), and the day/month swap of it when that reads as many.
 * Undefined when no candidate reads any value.
 */
export function guessDateFormat(values: readonly string[]): DateGuess | undefined {
  let best: { format: string; fits: number } | undefined;
  for (const format of CANDIDATE_DATE_FORMATS) {
    const fits = fitsOf(format, values);
    if (fits > (best?.fits ?? 0)) best = { format, fits };
  }
  if (!best) return undefined;
  const swapped = swapDayMonth(best.format);
  const alsoFits = swapped !== undefined && fitsOf(swapped, values) === best.fits ? swapped : undefined;
  const zoned = best.format.startsWith('epoch-') || best.format.endsWith('ZZ') || (best.format === 'iso' && values.every((v) => /(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$/.test(v)));
  const twoDigitYear = !/yyyy/.test(best.format) && /yy/.test(best.format);
  return { format: best.format, fits: best.fits, of: values.length, ...(alsoFits ? { alsoFits } : {}), zoned, ...(twoDigitYear ? { twoDigitYear } : {}) };
}
