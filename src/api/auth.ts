import { createHash } from 'node:crypto';
import type { Destination } from '../config/schema';
import type { SecretsProvider } from '../aws/secrets';
import { ERROR_CODES } from '../codes';
import { AuthError, BadgesImportError } from '../errors';
import { SPANS, trace } from '../trace';

/** Capillary's Basic scheme: `base64(username + ":" + md5hex(password))`. */
export function basicAuthorization(username: string, password: string): string {
  const md5 = createHash('md5').update(password, 'utf8').digest('hex');
  return `Basic ${Buffer.from(`${username}:${md5}`, 'utf8').toString('base64')}`;
}

/** What a token sent as a header value may hold: visible ASCII, no spaces or line breaks (RFC 9110 field-vchar). */
const TOKEN_CHARACTERS = /^[\x21-\x7e]+$/;

/** The token endpoint could not be reached or answered with a server error: worth another try later. */
export class TokenUnavailableError extends BadgesImportError {
  static override readonly code = ERROR_CODES.TOKEN_UNAVAILABLE;
}

/** Supplies the authentication headers for each request. */
export interface AuthProvider {
  headers(): Promise<Record<string, string>>;
  /** Forgets the current credentials after a 401; false when there is nothing to refresh (Basic). */
  refresh(): boolean;
}

export interface AuthOptions {
  baseUrl: string;
  fetch?: typeof fetch;
  now?: () => number;
  /** Renew a token when less than this share of its lifetime is left. @default 0.2 */
  refreshShare?: number;
}

export function authProvider(auth: Destination['auth'], secrets: SecretsProvider, options: AuthOptions): AuthProvider {
  if (auth.type === 'basic') {
    let header: Promise<string> | undefined;
    return {
      async headers() {
        header ??= Promise.all([secrets.get(auth.usernameSecret), secrets.get(auth.passwordSecret)]).then(([u, p]) => basicAuthorization(u, p));
        return { Authorization: await header };
      },
      refresh: () => false,
    };
  }
  return new OAuthProvider(auth, secrets, options);
}

/**
 * OAuth as Capillary does it: `POST {tokenUrl}` with `{ key, secret }` returns `{ data: { accessToken, ttlSeconds } }`,
 * sent as `X-CAP-API-OAUTH-TOKEN`. The token is cached, renewed before it expires, and dropped on a 401.
 */
class OAuthProvider implements AuthProvider {
  private token: Promise<{ value: string; renewAt: number }> | undefined;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly url: string;

  constructor(
    private readonly auth: Extract<Destination['auth'], { type: 'oauth' }>,
    private readonly secrets: SecretsProvider,
    private readonly options: AuthOptions,
  ) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.url = auth.tokenUrl ?? `${options.baseUrl}/v3/oauth/token/generate`;
  }

  async headers(): Promise<Record<string, string>> {
    const current = this.token ? await this.token.catch(() => undefined) : undefined;
    if (!current || this.now() >= current.renewAt) {
      this.token = trace(SPANS.apiToken, () => this.generate());
      this.token.catch(() => (this.token = undefined));
    }
    return { 'X-CAP-API-OAUTH-TOKEN': (await this.token!).value };
  }

  refresh(): boolean {
    this.token = undefined;
    return true;
  }

  private async generate(): Promise<{ value: string; renewAt: number }> {
    const [key, secret] = await Promise.all([this.secrets.get(this.auth.keySecret), this.secrets.get(this.auth.secretSecret)]);
    let response: Response;
    try {
      response = await this.fetch(this.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ key, secret }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (error) {
      throw new TokenUnavailableError(`The token endpoint ${this.url} did not answer`, { cause: error });
    }
    if (response.status === 401 || response.status === 403 || response.status === 400) {
      await response.body?.cancel();
      throw new AuthError(`The token endpoint refused the OAuth key and secret (HTTP ${response.status})`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new TokenUnavailableError(`The token endpoint answered HTTP ${response.status}`);
    }
    let body: { data?: { accessToken?: unknown; ttlSeconds?: unknown } } | null;
    try {
      body = (await response.json()) as typeof body;
    } catch {
      // Not JSON.parse's message: it quotes the text it choked on, which may be the token itself.
      throw new TokenUnavailableError('The token endpoint answered a body that is not JSON');
    }
    const value = body?.data?.accessToken;
    const ttl = Number(body?.data?.ttlSeconds ?? 300);
    if (typeof value !== 'string' || value === '') throw new TokenUnavailableError('The token endpoint answered without an accessToken');
    // Checked here, where it is received: fetch would refuse it as a header and quote it in its error, which then
    // travels into outcomes, reports and the vendor's error directory. The message gives its length, never the value.
    if (!TOKEN_CHARACTERS.test(value)) {
      throw new TokenUnavailableError(`The token endpoint answered an accessToken that cannot be sent as a header (${value.length} characters, not all visible ASCII); it was not used`);
    }
    return { value, renewAt: this.now() + ttl * 1000 * (1 - (this.options.refreshShare ?? 0.2)) };
  }
}
