import { MAX_ERROR_MESSAGE, MissingColumnError, describeCaughtError } from '../src/errors';

describe('Function: describeCaughtError', () => {
  it('reads the message of a Lambda error document, also when Step Functions cut it at 32,768 characters', () => {
    // Prepare: Lambda's error document for a message far longer than a Cause may be.
    const document = JSON.stringify({ errorType: 'MissingColumnError', errorMessage: `The header lacks "member_id"; it has: ${'"a_vendor_column", '.repeat(3000)}`, trace: ['MissingColumnError: …'] });

    // Act
    const whole = describeCaughtError({ Error: 'MissingColumnError', Cause: document });
    const cut = describeCaughtError({ Error: 'MissingColumnError', Cause: document.slice(0, 32_768) });

    // Assess: the code from the name, the message from the document, bounded and saying it was cut.
    for (const described of [whole, cut]) {
      expect(described.code).toBe('MISSING_COLUMN');
      expect(described.message).toMatch(/^The header lacks "member_id"; it has: "a_vendor_column"/);
      expect(described.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE);
      expect(described.message).toMatch(/more characters\)$/);
    }
  });

  it('keeps a plain Cause as it is', () => {
    expect(describeCaughtError({ Error: 'States.Timeout', Cause: 'Task timed out' })).toEqual({ code: 'STEP_TIMEOUT', message: 'Task timed out' });
  });
});

describe('Class: BadgesImportError', () => {
  it('bounds its message, so that it reaches Step Functions whole', () => {
    // Act
    const error = new MissingColumnError(`x${'y'.repeat(50_000)}`);

    // Assess
    expect(error.message.length).toBe(MAX_ERROR_MESSAGE);
    expect(error.message).toMatch(/^xy+ … \(\d+ more characters\)$/);
    expect(error.name).toBe('MissingColumnError');
  });
});
