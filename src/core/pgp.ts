import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import { DecryptionError, IntegrityError, SignatureError } from '../errors';

const ARMOR_HEADER = '-----BEGIN PGP MESSAGE-----';
/** Packet tags that can open an encrypted message: PKESK (1), SKESK (3), and a compressed or signed wrapper. */
const OPENING_TAGS = new Set([1, 3]);

/**
 * Whether the first bytes of a file are PGP data, armored or binary, whatever the file is called. Binary OpenPGP
 * starts with a packet header (bit 7 set) whose tag opens an encrypted message.
 */
export function isPgpData(head: Buffer): boolean {
  const text = head.subarray(0, 64).toString('latin1').replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith(ARMOR_HEADER)) return true;
  const first = head[0];
  if (first === undefined || (first & 0x80) === 0) return false;
  const tag = first & 0x40 ? first & 0x3f : (first >> 2) & 0x0f;
  return OPENING_TAGS.has(tag);
}

export interface DecryptionKeys {
  privateKeys: openpgp.PrivateKey[];
  verificationKeys?: openpgp.PublicKey[];
}

/** An armored key as given, or Base64 of it (the form Connect+ takes). */
function armored(value: string): string {
  const trimmed = value.trim();
  if (trimmed.startsWith('-----BEGIN PGP')) return trimmed;
  const decoded = Buffer.from(trimmed, 'base64').toString('utf8').trim();
  if (decoded.startsWith('-----BEGIN PGP')) return decoded;
  throw new DecryptionError('The configured key is neither an armored PGP key nor Base64 of one');
}

/**
 * Reads the private key (unlocking it with the passphrase when it is protected) and, when configured, the vendor's
 * public key for signature checks. Error messages never carry key material or the passphrase.
 */
export async function loadDecryptionKeys(privateKey: string, passphrase?: string, vendorPublicKey?: string): Promise<DecryptionKeys> {
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored(privateKey) });
  } catch (error) {
    if (error instanceof DecryptionError) throw error;
    throw new DecryptionError('The configured private key cannot be read as a PGP private key');
  }
  if (!key.isDecrypted()) {
    if (!passphrase) throw new DecryptionError('The configured private key is protected by a passphrase, and no passphrase secret is configured');
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch {
      throw new DecryptionError('The configured passphrase does not unlock the private key');
    }
  }
  let verificationKeys: openpgp.PublicKey[] | undefined;
  if (vendorPublicKey !== undefined) {
    try {
      verificationKeys = [await openpgp.readKey({ armoredKey: armored(vendorPublicKey) })];
    } catch {
      throw new SignatureError("The configured vendor public key cannot be read as a PGP public key");
    }
  }
  return { privateKeys: [key], ...(verificationKeys ? { verificationKeys } : {}) };
}

export interface DecryptedStream {
  /**
   * The plaintext as it is decrypted. NOT YET TRUSTED: openpgp releases data before the integrity check at the end of
   * the message, so whoever reads this must not act on any of it until it has ended without error and `verified`
   * has resolved.
   */
  plaintext: Readable;
  /** Resolves once the signature checks out (at once when none is required); rejects with SignatureError. */
  verified: Promise<void>;
}

/**
 * Decrypts a PGP message as a stream (armored or binary; any compression). Streaming keeps memory flat; the price is
 * that the integrity check (MDC or AEAD) is known only at the end, hence `DecryptedStream.plaintext`'s contract.
 */
export async function decryptStream(input: Readable, keys: DecryptionKeys, armoredInput: boolean): Promise<DecryptedStream> {
  const config = { allowUnauthenticatedStream: true };
  let message: openpgp.Message<openpgp.WebStream<Uint8Array>>  ;
  try {
    const web = Readable.toWeb(input) as unknown as WebReadableStream<Uint8Array>;
    message = armoredInput
      ? await openpgp.readMessage({ armoredMessage: web.pipeThrough(new TextDecoderStream()) as never, config })
      : await openpgp.readMessage({ binaryMessage: web as never, config });
  } catch (error) {
    throw new DecryptionError(`The file is not a readable PGP message (${describe(error)})`);
  }
  let result: Awaited<ReturnType<typeof openpgp.decrypt>>;
  try {
    result = await openpgp.decrypt({
      message: message,
      decryptionKeys: keys.privateKeys,
      ...(keys.verificationKeys ? { verificationKeys: keys.verificationKeys, expectSigned: true } : {}),
      format: 'binary',
      config,
    });
  } catch (error) {
    // A small message is decrypted whole before decrypt() returns, so its integrity failure surfaces here too.
    throw streamFailure(error);
  }
  const plaintext = Readable.fromWeb(result.data);
  const verified = keys.verificationKeys
    ? Promise.all(result.signatures.map((s) => s.verified)).then(
        (all) => {
          if (all.length === 0) throw new SignatureError('The file carries no signature; the configuration requires one');
        },
        (error: unknown) => {
          throw new SignatureError(`The file's signature does not verify with the configured vendor key (${describe(error)})`);
        },
      )
    : Promise.resolve();
  verified.catch(() => undefined);
  return { plaintext, verified };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Maps an openpgp failure to what it means for the file. Integrity and signature failures surface from decrypt()
 * for a small message, and from the plaintext stream for a large one.
 */
export function streamFailure(error: unknown): Error {
  const message = describe(error);
  // With a signature required, openpgp fails when the signer is not the configured vendor key or there is none.
  if (/signing key|signature|not signed/i.test(message)) {
    return new SignatureError(`The file is not signed by the configured vendor key (${message}); nothing from it was used`);
  }
  if (/modification detected|integrity|authentication tag|mdc|truncat|unexpected end|premature|ended before/i.test(message)) {
    return new IntegrityError(`The file failed its integrity check: it was altered or cut short (${message}); nothing from it was used`);
  }
  return new DecryptionError(`The file cannot be decrypted with the configured key (${message}); nothing from it was used`);
}
