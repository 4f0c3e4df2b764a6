import { ERROR_CODES, type ErrorCode } from './codes';

/**
 * Named errors. The class name doubles as the Step Functions `ErrorEquals` value: the state machine retries the
 * retryable ones and catches the fatal ones, which end the file as FAILED with the error's `code` in the report.
 * Each class says both once, as statics: its `code` (from ERROR_CODES) and whether it is `fatal`; the Catch list and
 * the code of a caught error are derived from them.
 */
export class BadgesImportError extends Error {
  /** Stable code written to the report (`error.code`); each class sets its own. */
  static readonly code: ErrorCode = ERROR_CODES.INTERNAL_ERROR;
  /** Caught by the state machine as fatal for the file (FAILED, nothing more sent) rather than retried or crashed. */
  static readonly fatal: boolean = false;
  /** The class's code, on the error itself (what the report, the CLI and the logs read). */
  readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(boundedMessage(message), options);
    this.name = new.target.name;
    this.code = new.target.code;
  }
}

/**
 * Longest error message kept whole. Step Functions cuts a task failure's Cause at 32,768 characters, and Lambda puts
 * the message there twice (errorMessage and the first line of the stack), so a message naming a very wide header
 * would arrive cut, or not at all; messages are cut here instead, saying so.
 */
export const MAX_ERROR_MESSAGE = 4096;

/** A message cut to MAX_ERROR_MESSAGE characters, ending with how much was left out. */
export function boundedMessage(message: string, max = MAX_ERROR_MESSAGE): string {
  if (message.length <= max) return message;
  const note = ` … (${message.length - max} more characters)`;
  return `${message.slice(0, max - note.length)}${note}`;
}

/** The configuration file is invalid; every problem is listed in the message with its JSON path. */
export class ConfigError extends BadgesImportError {
  static override readonly code = ERROR_CODES.INVALID_CONFIG;
  static override readonly fatal = true;
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** The header lacks a column the mapping needs: nothing is sent. */
export class MissingColumnError extends BadgesImportError {
  static override readonly code = ERROR_CODES.MISSING_COLUMN;
  static override readonly fatal = true;
}

/** A column the mapping uses appears more than once in the header: which one is meant cannot be known. */
export class AmbiguousColumnError extends BadgesImportError {
  static override readonly code = ERROR_CODES.AMBIGUOUS_COLUMN;
  static override readonly fatal = true;
}

/** Record boundaries cannot be trusted (unterminated quote, bad quoting): nothing is sent. */
export class MalformedCsvError extends BadgesImportError {
  static override readonly code = ERROR_CODES.MALFORMED_CSV;
  static override readonly fatal = true;
}

/** The file has no bytes at all. */
export class EmptyFileError extends BadgesImportError {
  static override readonly code = ERROR_CODES.EMPTY_FILE;
  static override readonly fatal = true;
}

/** The source object vanished or cannot be read. */
export class SourceReadError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SOURCE_UNREADABLE;
  static override readonly fatal = true;
}

/** A named secret is missing or empty. */
export class SecretNotFoundError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SECRET_NOT_FOUND;
  static override readonly fatal = true;
}

/** The API refused the credentials. */
export class AuthError extends BadgesImportError {
  static override readonly code = ERROR_CODES.AUTH_FAILED;
  static override readonly fatal = true;
}

/** A local file whose name the dataflow would leave alone (it does not match the file pattern). */
export class FileNotMatchedError extends BadgesImportError {
  static override readonly code = ERROR_CODES.FILE_NOT_MATCHED;
}

/** The execution input names a dataflow that the configuration does not have. */
export class UnknownDataflowError extends BadgesImportError {
  static override readonly code = ERROR_CODES.UNKNOWN_DATAFLOW;
  static override readonly fatal = true;
}

/** The file is PGP data that cannot be decrypted with the configured key (wrong key, bad passphrase, damaged header). */
export class DecryptionError extends BadgesImportError {
  static override readonly code = ERROR_CODES.DECRYPTION_FAILED;
  static override readonly fatal = true;
}

/** The file decrypted but failed its integrity check (tampered or truncated): none of it is used. */
export class IntegrityError extends BadgesImportError {
  static override readonly code = ERROR_CODES.INTEGRITY_CHECK_FAILED;
  static override readonly fatal = true;
}

/** The file's signature is missing, made by another key, or does not match. */
export class SignatureError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SIGNATURE_INVALID;
  static override readonly fatal = true;
}

/** An archive that is unsafe to open: a decompression bomb, a path escaping its folder, an encrypted entry. */
export class UnsafeArchiveError extends BadgesImportError {
  static override readonly code = ERROR_CODES.UNSAFE_ARCHIVE;
  static override readonly fatal = true;
}

/** The SFTP server could not be reached, refused the login, or failed an operation. */
export class SftpError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SFTP_FAILED;
}

/** The vendor's own bucket could not be listed, read, moved in or written to, or its role could not be assumed. */
export class VendorBucketError extends BadgesImportError {
  static override readonly code = ERROR_CODES.VENDOR_BUCKET_FAILED;
}

/** The SFTP server presented a host key other than the pinned one: nothing is read from it or written to it. */
export class HostKeyMismatchError extends BadgesImportError {
  static override readonly code = ERROR_CODES.SFTP_HOST_KEY_MISMATCH;
}

/** The file is not text in the declared encoding (another encoding, or binary data): nothing is sent. */
export class EncodingError extends BadgesImportError {
  static override readonly code = ERROR_CODES.ENCODING_MISMATCH;
  static override readonly fatal = true;
}

/** A replay file that is not a rejected-records file, or has a record without its original number. */
export class ReplayFileError extends BadgesImportError {
  static override readonly code = ERROR_CODES.REPLAY_FILE_INVALID;
  static override readonly fatal = true;
}

/**
 * The file holds more records than its dataflow's `csv.maxRecords`: the state machine's timeout is sized for files up
 * to that many records at the configured rate (src/config/limits.ts), so a larger one is refused before anything is sent.
 */
export class FileTooLargeError extends BadgesImportError {
  static override readonly code = ERROR_CODES.FILE_TOO_LARGE;
  static override readonly fatal = true;
}

/**
 * The named errors of the per-file workflow, each once: what the state machine's Catch and the report derive from.
 * (A test checks that every error class exported here is listed.)
 */
export const WORKFLOW_ERRORS = [
  // In the order of the Catch as it was first written (the synthesized definition stays the same).
  MissingColumnError,
  AmbiguousColumnError,
  MalformedCsvError,
  EmptyFileError,
  SourceReadError,
  SecretNotFoundError,
  AuthError,
  UnknownDataflowError,
  ConfigError,
  DecryptionError,
  IntegrityError,
  SignatureError,
  UnsafeArchiveError,
  ReplayFileError,
  EncodingError,
  FileNotMatchedError,
  SftpError,
  HostKeyMismatchError,
  VendorBucketError,
  FileTooLargeError,
] as const;

const FATAL_ERRORS = WORKFLOW_ERRORS.filter((error) => error.fatal);

/** Error names the state machine treats as fatal for the file (caught, file FAILED, nothing more sent). */
export const FATAL_ERROR_NAMES: readonly string[] = FATAL_ERRORS.map((error) => error.name);

/**
 * The code of what a Catch hands over, by error name: the fatal errors, which the state machine catches by name, and
 * a step's timeout. Anything else (a retried error whose retries ran out, a crash) is INTERNAL_ERROR.
 */
const CODES_BY_NAME = new Map<string, ErrorCode>([...FATAL_ERRORS.map((error) => [error.name, error.code] as const), ['States.Timeout', ERROR_CODES.STEP_TIMEOUT]]);

/**
 * Turns a Step Functions Catch output (`{ Error, Cause }`) into the report's `{ code, message }`.
 * In AWS, a Lambda error's Cause is a JSON document with `errorMessage`; locally it is the plain message.
 */
export function describeCaughtError(caught: { Error?: string; Cause?: string }): { code: string; message: string } {
  const name = caught.Error ?? 'Error';
  let message = caught.Cause ?? name;
  try {
    const parsed = JSON.parse(message) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') message = parsed.errorMessage;
  } catch {
    // A plain message, or Lambda's error document cut at 32,768 characters: keep what there is of its errorMessage.
    const cut = /^\{"errorType":"[^"]*","errorMessage":"((?:[^"\\]|\\.)*)/.exec(message);
    if (cut) {
      try {
        message = JSON.parse(`"${cut[1]!.replace(/\\(u[0-9a-fA-F]{0,3})?$/, '')}"`) as string;
      } catch {
        message = cut[1]!;
      }
    }
  }
  return { code: CODES_BY_NAME.get(name) ?? ERROR_CODES.INTERNAL_ERROR, message: boundedMessage(message) };
}
