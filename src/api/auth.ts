import { createHash } from 'node:crypto';
import type { Destination } from '../config/schema';
import type { SecretsProvider } from '../aws/secrets';

/** Capillary's Basic scheme: `base64(username + ":" + md5hex(password))`. */
export function basicAuthorization(username: string, password: string): string {
  const md5 = createHash('md5').update(password, 'utf8').digest('hex');
  return `Basic ${Buffer.from(`${username}:${md5}`, 'utf8').toString('base64')}`;
}

/** Supplies the authentication headers for each request. */
export interface AuthProvider {
  headers(): Promise<Record<string, string>>;
}

export function authProvider(auth: Destination['auth'], secrets: SecretsProvider): AuthProvider {
  let header: Promise<string> | undefined;
  return {
    async headers() {
      header ??= Promise.all([secrets.get(auth.usernameSecret), secrets.get(auth.passwordSecret)]).then(([u, p]) => basicAuthorization(u, p));
      return { Authorization: await header };
    },
  };
}
