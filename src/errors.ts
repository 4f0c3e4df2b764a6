/**
 * Named errors. The class name doubles as the Step Functions `ErrorEquals` value: the state machine retries the
 * retryable ones and catches the fatal ones, which end the file as FAILED with the error's `code` in the report.
 */
export class BadgesImportError extends Error {
  /** Stable code written to the report (`error.code`). */
  readonly code: string = 'INTERNAL_ERROR';

  constructor(message: string, options?: { cause?: unknown }) {
    super(boundedMessage(message), options);
    this.name = new.target.name;
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
  override readonly code = 'INVALID_CONFIG';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** The header lacks a column the mapping needs: nothing is sent. */
export class MissingColumnError extends BadgesImportError {
  override readonly code = 'MISSING_COLUMN';
}

/** A column the mapping uses appears more than once in the header: which one is meant cannot be known. */
export class AmbiguousColumnError extends BadgesImportError {
  override readonly code = 'AMBIGUOUS_COLUMN';
}

/** Record boundaries cannot be trusted (unterminated quote, bad quoting): nothing is sent. */
export class MalformedCsvError extends BadgesImportError {
  override readonly code = 'MALFORMED_CSV';
}

/** The file has no bytes at all. */
export class EmptyFileError extends BadgesImportError {
  override readonly code = 'EMPTY_FILE';
}

/** The source object vanished or cannot be read. */
export class SourceReadError extends BadgesImportError {
  override readonly code = 'SOURCE_UNREADABLE';
}

/** A named secret is missing or empty. */
export class SecretNotFoundError extends BadgesImportError {
  override readonly code = 'SECRET_NOT_FOUND';
}

/** The API refused the credentials. */
export class AuthError extends BadgesImportError {
  override readonly code = 'AUTH_FAILED';
}

/** A local file whose name the dataflow would leave alone (it does not match the file pattern). */
export class FileNotMatchedError extends BadgesImportError {
  override readonly code = 'FILE_NOT_MATCHED';
}

/** The execution input names a dataflow that the configuration does not have. */
export class UnknownDataflowError extends BadgesImportError {
  override readonly code = 'UNKNOWN_DATAFLOW';
}

/** The file is PGP data that cannot be decrypted with the configured key (wrong key, bad passphrase, damaged header). */
export class DecryptionError extends BadgesImportError {
  override readonly code = 'DECRYPTION_FAILED';
}

/** The file decrypted but failed its integrity check (tampered or truncated): none of it is used. */
export class IntegrityError extends BadgesImportError {
  override readonly code = 'INTEGRITY_CHECK_FAILED';
}

/** The file's signature is missing, made by another key, or does not match. */
export class SignatureError extends BadgesImportError {
  override readonly code = 'SIGNATURE_INVALID';
}

/** An archive that is unsafe to open: a decompression bomb, a path escaping its folder, an encrypted entry. */
export class UnsafeArchiveError extends BadgesImportError {
  override readonly code = 'UNSAFE_ARCHIVE';
}

/** The SFTP server could not be reached, refused the login, or failed an operation. */
export class SftpError extends BadgesImportError {
  override readonly code = 'SFTP_FAILED';
}

/** The SFTP server presented a host key other than the pinned one: nothing is read from it or written to it. */
export class HostKeyMismatchError extends BadgesImportError {
  override readonly code = 'SFTP_HOST_KEY_MISMATCH';
}

/** The file is not text in the declared encoding (another encoding, or binary data): nothing is sent. */
export class EncodingError extends BadgesImportError {
  override readonly code = 'ENCODING_MISMATCH';
}

/** So many records repeat earlier ones that settling them would not fit in memory: the file is refused. */
export class TooManyDuplicatesError extends BadgesImportError {
  override readonly code = 'TOO_MANY_DUPLICATES';
}

/** A replay file that is not a rejected-records file, or has a record without its original number. */
export class ReplayFileError extends BadgesImportError {
  override readonly code = 'REPLAY_FILE_INVALID';
}

/** Error names the state machine treats as fatal for the file (caught, file FAILED, nothing more sent). */
export const FATAL_ERROR_NAMES = [
  'MissingColumnError',
  'AmbiguousColumnError',
  'MalformedCsvError',
  'EmptyFileError',
  'SourceReadError',
  'SecretNotFoundError',
  'AuthError',
  'UnknownDataflowError',
  'ConfigError',
  'DecryptionError',
  'IntegrityError',
  'SignatureError',
  'UnsafeArchiveError',
  'ReplayFileError',
  'EncodingError',
  'TooManyDuplicatesError',
] as const;

const CODES_BY_NAME: Record<string, string> = {
  ConfigError: 'INVALID_CONFIG',
  MissingColumnError: 'MISSING_COLUMN',
  AmbiguousColumnError: 'AMBIGUOUS_COLUMN',
  MalformedCsvError: 'MALFORMED_CSV',
  EmptyFileError: 'EMPTY_FILE',
  SourceReadError: 'SOURCE_UNREADABLE',
  SecretNotFoundError: 'SECRET_NOT_FOUND',
  AuthError: 'AUTH_FAILED',
  UnknownDataflowError: 'UNKNOWN_DATAFLOW',
  DecryptionError: 'DECRYPTION_FAILED',
  IntegrityError: 'INTEGRITY_CHECK_FAILED',
  SignatureError: 'SIGNATURE_INVALID',
  UnsafeArchiveError: 'UNSAFE_ARCHIVE',
  ReplayFileError: 'REPLAY_FILE_INVALID',
  EncodingError: 'ENCODING_MISMATCH',
  TooManyDuplicatesError: 'TOO_MANY_DUPLICATES',
  'States.Timeout': 'STEP_TIMEOUT',
};

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
  return { code: CODES_BY_NAME[name] ?? 'INTERNAL_ERROR', message: boundedMessage(message) };
}
