import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { TokenUnavailableError } from '../src/api/auth';
import { SendAuthError } from '../src/api/client';
import { API_CODES, ERROR_CODES, SEND_CODES, VALIDATION_CODES } from '../src/codes';
import * as errors from '../src/errors';
import { BadgesImportError, FATAL_ERROR_NAMES, WORKFLOW_ERRORS, describeCaughtError } from '../src/errors';
import { StackNotFoundError } from '../src/ops/deployed';
import { ReportFileError } from '../src/report/load';
import { SampleError } from '../src/core/infer-text';

const SRC = join(__dirname, '..', 'src');
const TABLES = { ERROR_CODES, VALIDATION_CODES, SEND_CODES, API_CODES };

/** Every .ts file under a directory. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []));
}

/** The error classes src/errors.ts exports (the base class aside). */
const exportedErrorClasses = Object.values(errors).filter((value): value is typeof BadgesImportError => typeof value === 'function' && value.prototype instanceof BadgesImportError);

describe('Module: codes', () => {
  it('writes every code once, across all the tables', () => {
    // Prepare
    const all = Object.values(TABLES).flatMap((table) => Object.values(table) as string[]);

    // Assess
    expect(all.length).toBeGreaterThan(30);
    expect(new Set(all).size).toBe(all.length);
  });

  it('names each of its own codes as it is written', () => {
    // Assess: a key that differs from its value would make two spellings of one code.
    for (const table of [ERROR_CODES, VALIDATION_CODES, SEND_CODES]) {
      for (const [key, value] of Object.entries(table)) expect([key, value]).toEqual([key, key]);
    }
  });

  it('is the only place in src/ that writes a code as a string', () => {
    // Prepare: every code of the tables, as a quoted string.
    const codes = Object.values(TABLES).flatMap((table) => Object.values(table) as string[]);
    const quoted = new RegExp(`(['"\`])(${codes.join('|')})\\1`, 'g');

    // Act
    const found = sources(SRC)
      .filter((file) => file !== join(SRC, 'codes.ts'))
      .flatMap((file) => [...readFileSync(file, 'utf8').matchAll(quoted)].map((match) => `${relative(SRC, file)}: ${match[0]}`));

    // Assess
    expect(found).toEqual([]);
  });
});

describe('Classes: the named errors', () => {
  it('give each class that sets a code its own, from ERROR_CODES', () => {
    // Prepare: the classes of src/errors.ts and those kept beside the code that throws them; a subclass that keeps
    // its parent's code (SendAuthError is an AuthError) sets none.
    const classes = [...exportedErrorClasses, TokenUnavailableError, ReportFileError, StackNotFoundError, SendAuthError, SampleError];
    const own = classes.filter((error) => Object.hasOwn(error, 'code'));

    // Assess
    expect(own.map((error) => error.name)).not.toContain('SendAuthError');
    const codes = own.map((error) => error.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(Object.values(ERROR_CODES)).toEqual(expect.arrayContaining(codes));
    expect(new SendAuthError('refused', []).code).toBe(ERROR_CODES.AUTH_FAILED);
  });

  it('set each code once in all of src/ (the local workflow included), never two classes the same', () => {
    // Prepare
    const declared = sources(SRC).flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/static override readonly code = ERROR_CODES\.(\w+);/g)].map((m) => m[1]!));

    // Assess
    expect(declared.length).toBeGreaterThanOrEqual(exportedErrorClasses.length + 5);
    expect(new Set(declared).size).toBe(declared.length);
  });

  it('list every class of src/errors.ts in WORKFLOW_ERRORS', () => {
    expect([...WORKFLOW_ERRORS].map((error) => error.name).sort()).toEqual(exportedErrorClasses.map((error) => error.name).sort());
  });

  it('make FATAL_ERROR_NAMES the names of the classes marked fatal, in the order of the Catch', () => {
    // Prepare
    const fatal = exportedErrorClasses.filter((error) => error.fatal).map((error) => error.name);

    // Assess: the same names; the order is the state machine's (so the synthesized Catch does not change).
    expect([...FATAL_ERROR_NAMES].sort()).toEqual(fatal.sort());
    expect(FATAL_ERROR_NAMES).toEqual([
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
      'FileTooLargeError',
    ]);
  });

  it('put the class code on each error, and describeCaughtError reads a fatal one back by name', () => {
    for (const ErrorClass of WORKFLOW_ERRORS) {
      // Act
      const error = ErrorClass === errors.ConfigError ? new errors.ConfigError(['x']) : new (ErrorClass as typeof BadgesImportError)('x');
      const caught = describeCaughtError({ Error: error.name, Cause: error.message });

      // Assess: a fatal error keeps its code through the Catch; any other is INTERNAL_ERROR there.
      expect(error.code).toBe(ErrorClass.code);
      expect(caught.code).toBe(ErrorClass.fatal ? ErrorClass.code : ERROR_CODES.INTERNAL_ERROR);
    }
  });
});
