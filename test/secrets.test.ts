import { GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerProvider } from '../src/aws/secrets';
import { SecretNotFoundError } from '../src/errors';

// Secrets Manager has no local stand-in: it is mocked.
const smMock = mockClient(SecretsManagerClient);
beforeEach(() => smMock.reset());

describe('Class: SecretsManagerProvider', () => {
  it('reads a secret once per container and serves it from memory after that', async () => {
    smMock.on(GetSecretValueCommand, { SecretId: 'api/password' }).resolves({ SecretString: 'v4lue-only-here' });
    const provider = new SecretsManagerProvider(new SecretsManagerClient({ region: 'eu-west-1' }));

    expect(await provider.get('api/password')).toBe('v4lue-only-here');
    expect(await provider.get('api/password')).toBe('v4lue-only-here');
    expect(smMock.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  });

  it('names a missing secret, and asks again next time rather than caching the failure', async () => {
    smMock.on(GetSecretValueCommand).rejectsOnce(new ResourceNotFoundException({ message: 'not found', $metadata: {} })).resolves({ SecretString: 'created-since' });
    const provider = new SecretsManagerProvider(new SecretsManagerClient({ region: 'eu-west-1' }));

    const failure = provider.get('sftp/password');
    await expect(failure).rejects.toThrow(SecretNotFoundError);
    await expect(failure).rejects.toThrow('Secret "sftp/password" does not exist in Secrets Manager');
    expect(await provider.get('sftp/password')).toBe('created-since');
  });
});
