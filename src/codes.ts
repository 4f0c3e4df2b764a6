/**
 * Every stable code the import writes, one table per family. A code is a contract: reports, rejected-records files,
 * metrics dimensions, alarms and replays read it, so each is written here once and imported everywhere else (a test
 * keeps them unique). This module imports nothing.
 */

/**
 * Why a file ended FAILED (the report's `error.code`, the CLI's and the notification's error line). Each named error
 * class (src/errors.ts and a few beside the code that throws them) carries one of these as its static `code`.
 */
export const ERROR_CODES = {
  /** An error no class names: a defect, or a step that failed for a reason the state machine does not catch by name. */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  INVALID_CONFIG: 'INVALID_CONFIG',
  MISSING_COLUMN: 'MISSING_COLUMN',
  AMBIGUOUS_COLUMN: 'AMBIGUOUS_COLUMN',
  MALFORMED_CSV: 'MALFORMED_CSV',
  EMPTY_FILE: 'EMPTY_FILE',
  SOURCE_UNREADABLE: 'SOURCE_UNREADABLE',
  SECRET_NOT_FOUND: 'SECRET_NOT_FOUND',
  AUTH_FAILED: 'AUTH_FAILED',
  FILE_NOT_MATCHED: 'FILE_NOT_MATCHED',
  UNKNOWN_DATAFLOW: 'UNKNOWN_DATAFLOW',
  DECRYPTION_FAILED: 'DECRYPTION_FAILED',
  INTEGRITY_CHECK_FAILED: 'INTEGRITY_CHECK_FAILED',
  SIGNATURE_INVALID: 'SIGNATURE_INVALID',
  UNSAFE_ARCHIVE: 'UNSAFE_ARCHIVE',
  SFTP_FAILED: 'SFTP_FAILED',
  SFTP_HOST_KEY_MISMATCH: 'SFTP_HOST_KEY_MISMATCH',
  /** The vendor's own bucket (source.bucket) could not be listed, read, moved in or written to, or its role assumed. */
  VENDOR_BUCKET_FAILED: 'VENDOR_BUCKET_FAILED',
  ENCODING_MISMATCH: 'ENCODING_MISMATCH',
  REPLAY_FILE_INVALID: 'REPLAY_FILE_INVALID',
  /** The token endpoint did not give a usable token (retried by the client; fatal only once retries are used up). */
  TOKEN_UNAVAILABLE: 'TOKEN_UNAVAILABLE',
  /** Step Functions' `States.Timeout`: a step ran out of time. */
  STEP_TIMEOUT: 'STEP_TIMEOUT',
  /** The file holds more records than its dataflow's csv.maxRecords (what the workflow's timeout was sized for). */
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  /** A finished run's records do not add up (read ≠ accepted + rejected): reported FAILED, never a success. */
  RECORDS_UNACCOUNTED: 'RECORDS_UNACCOUNTED',
  /** CLI only: a report.json that cannot be read as one. */
  REPORT_UNREADABLE: 'REPORT_UNREADABLE',
  /** CLI only: the deployed stack (or one of its outputs) cannot be read. */
  STACK_NOT_FOUND: 'STACK_NOT_FOUND',
  /** CLI only: `init` cannot draft a configuration from the sample (not text, no delimiter, no header, no date). */
  SAMPLE_UNUSABLE: 'SAMPLE_UNUSABLE',
  /** CLI only: the local workflow's execution failed without writing a report. */
  EXECUTION_FAILED: 'EXECUTION_FAILED',
  /** Local only: the CDK app the twin runs (`cdk synth`'s work) failed, or synthesized a stack with errors. */
  SYNTHESIS_FAILED: 'SYNTHESIS_FAILED',
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Why a record was rejected before anything was sent (stage `validate` of the rejected-records file). */
export const VALIDATION_CODES = {
  FIELD_COUNT: 'FIELD_COUNT',
  INVALID_CUSTOMER_ID: 'INVALID_CUSTOMER_ID',
  INVALID_BADGE_ID: 'INVALID_BADGE_ID',
  INVALID_DATE: 'INVALID_DATE',
  NONEXISTENT_LOCAL_TIME: 'NONEXISTENT_LOCAL_TIME',
  EXPIRY_BEFORE_EVENT: 'EXPIRY_BEFORE_EVENT',
  EVENT_IN_FUTURE: 'EVENT_IN_FUTURE',
  RECORD_TOO_LONG: 'RECORD_TOO_LONG',
  DUPLICATE_IN_FILE: 'DUPLICATE_IN_FILE',
  /** A mapped field's expression or the dataflow's filter failed on the record (a type error, a missing key, a result of the wrong type). */
  EXPRESSION_ERROR: 'EXPRESSION_ERROR',
} as const;
export type ValidationCode = (typeof VALIDATION_CODES)[keyof typeof VALIDATION_CODES];
/** The codes a date parser answers (a part of VALIDATION_CODES). */
export type DateCode = typeof VALIDATION_CODES.INVALID_DATE | typeof VALIDATION_CODES.NONEXISTENT_LOCAL_TIME;

/** Codes of records that the client could not settle (stage `api`); all are replayable. */
export const SEND_CODES = {
  /** Retries used up on 429, 502, 503, 521, refused connections, or unknown outcomes found not issued. */
  RETRIES_EXHAUSTED: 'RETRIES_EXHAUSTED',
  /** The outcome is unknown and reconciliation could not tell whether the badge was issued: check before replaying. */
  AMBIGUOUS: 'AMBIGUOUS',
} as const;
export type SendCode = (typeof SEND_CODES)[keyof typeof SEND_CODES];

/**
 * The badges API's own codes that the import writes itself (stage `api`). Any other code the API answers is written
 * as it answered it (e.g. 750, an earn event in the future).
 */
export const API_CODES = {
  /** The badge id is not in the org: what the API answers, and what the send step writes when it checked first. */
  BADGE_NOT_FOUND: '1054',
  /** The API refused an item without saying why (no error code). */
  UNCODED: 'API_ERROR',
} as const;
export type ApiCode = (typeof API_CODES)[keyof typeof API_CODES];
