import { readFileSync } from 'node:fs';
import { GetSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError, SecretNotFoundError } from '../errors';

/** Resolves a secret by name. Values are never logged or written anywhere by callers. */
export interface SecretsProvider {
  get(name: string): Promise<string>;
}

/** Secrets Manager, with each value cached for the life of the Lambda container. */
export class SecretsManagerProvider implements SecretsProvider {
  private readonly cache = new Map<string, Promise<string>>();
  constructor(private readonly client: SecretsManagerClient = new SecretsManagerClient({})) {}

  get(name: string): Promise<string> {
    let value = this.cache.get(name);
    if (!value) {
      value = this.fetch(name);
      value.catch(() => this.cache.delete(name));
      this.cache.set(name, value);
    }
    return value;
  }

  private async fetch(name: string): Promise<string> {
    try {
      const response = await this.client.send(new GetSecretValueCommand({ SecretId: name }));
      const value = response.SecretString;
      if (!value) throw new SecretNotFoundError(`Secret "${name}" has no string value`);
      return value;
    } catch (error) {
      if (error instanceof ResourceNotFoundException || (error as { name?: string }).name === 'ResourceNotFoundException') {
        throw new SecretNotFoundError(`Secret "${name}" does not exist in Secrets Manager`, { cause: error });
      }
      throw error;
    }
  }
}

/** Secrets from a plain map, e.g. the local `--secrets` JSON file `{ "name": "value" }`. */
export class StaticSecretsProvider implements SecretsProvider {
  constructor(private readonly values: Readonly<Record<string, string>>) {}

  get(name: string): Promise<string> {
    const value = this.values[name];
    if (typeof value !== 'string' || value === '') return Promise.reject(new SecretNotFoundError(`Secret "${name}" is not in the secrets file`));
    return Promise.resolve(value);
  }

  /** Reads `{ "name": "value" }`; the error names the file, never a value. */
  static fromFile(file: string): StaticSecretsProvider {
    let document: unknown;
    try {
      document = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError([`${file}: cannot be read as JSON (${(error as NodeJS.ErrnoException).code ?? 'invalid JSON'})`]);
    }
    if (typeof document !== 'object' || document === null || Array.isArray(document)) {
      throw new ConfigError([`${file}: must be a JSON object of secret names to string values`]);
    }
    const bad = Object.entries(document).filter(([, v]) => typeof v !== 'string').map(([k]) => k);
    if (bad.length > 0) throw new ConfigError(bad.map((k) => `${file}: "${k}" must be a string`));
    return new StaticSecretsProvider(document as Record<string, string>);
  }
}
