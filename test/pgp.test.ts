import { readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { type DecryptionKeys, decryptStream, isPgpData, loadDecryptionKeys, streamFailure } from '../src/core/pgp';
import { DecryptionError, IntegrityError, SignatureError } from '../src/errors';
import { type Compression, GnuPG } from './support/gpg';
import { toCsv, validRow } from './support/factories';

const gpg = new GnuPG();
const vendor = new GnuPG();
const PASSPHRASE = 'correct horse battery staple';
const plain = join(gpg.home, 'events.csv');
writeFileSync(plain, toCsv(Array.from({ length: 2000 }, (_, i) => validRow(i + 1))));
const expected = readFileSync(plain);

const rsa = gpg.generate('Brand RSA <rsa@brand.test>', 'rsa');
const curve = gpg.generate('Brand Curve <curve@brand.test>', 'curve25519');
const locked = gpg.generate('Brand Locked <locked@brand.test>', 'rsa', PASSPHRASE);
const other = gpg.generate('Someone Else <other@brand.test>', 'curve25519');
const vendorKey = vendor.generate('Vendor <vendor@vendor.test>', 'curve25519');
// The vendor encrypts to the brand's keys: give it the brand's public keys.
for (const fpr of [rsa, curve, other]) {
  writeFileSync(join(vendor.home, `${fpr}.asc`), gpg.exportPublic(fpr));
  vendor.run(['--import', join(vendor.home, `${fpr}.asc`)]);
}

let n = 0;
function encrypted(options: Parameters<GnuPG['encrypt']>[2], by: GnuPG = gpg): string {
  const out = join(gpg.home, `file-${++n}${options.armor ? '.asc' : '.gpg'}`);
  by.encrypt(plain, out, options);
  return out;
}

async function decryptFile(file: string, keys: DecryptionKeys): Promise<Buffer> {
  const head = readFileSync(file).subarray(0, 64);
  const { plaintext, verified } = await decryptStream(createReadStream(file), keys, head.toString('latin1').startsWith('-----BEGIN'));
  const parts: Buffer[] = [];
  try {
    for await (const part of plaintext) parts.push(part as Buffer);
  } catch (error) {
    throw streamFailure(error);
  }
  await verified;
  return Buffer.concat(parts);
}

const keysFor = (fingerprint: string, passphrase?: string, verifyWith?: string) => loadDecryptionKeys(gpg.exportSecret(fingerprint, passphrase ?? ''), passphrase, verifyWith);

describe('Function: decryptStream with files made by GnuPG', () => {
  it.each<[string, 'rsa' | 'curve', boolean, Compression]>([
    ['RSA, binary, zlib', 'rsa', false, 'zlib'],
    ['RSA, armored, zip', 'rsa', true, 'zip'],
    ['RSA, binary, bzip2', 'rsa', false, 'bzip2'],
    ['RSA, binary, uncompressed', 'rsa', false, 'none'],
    ['Curve25519, armored, zlib', 'curve', true, 'zlib'],
    ['Curve25519, binary, uncompressed', 'curve', false, 'none'],
  ])('decrypts %s', async (_label, kind, armor, compress) => {
    // Prepare
    const fingerprint = kind === 'rsa' ? rsa : curve;
    const file = encrypted({ recipients: [fingerprint], armor, compress });

    // Act
    const result = await decryptFile(file, await keysFor(fingerprint));

    // Assess
    expect(result.equals(expected)).toBe(true);
  });

  it('decrypts a file encrypted to several recipients with any one of their keys', async () => {
    // Prepare
    const file = encrypted({ recipients: [other, rsa, curve] });

    // Act + Assess
    expect((await decryptFile(file, await keysFor(curve))).equals(expected)).toBe(true);
    expect((await decryptFile(file, await keysFor(rsa))).equals(expected)).toBe(true);
  });

  it('unlocks a passphrase-protected key, and says so when the passphrase is missing or wrong', async () => {
    // Prepare
    const file = encrypted({ recipients: [locked] });
    const armored = gpg.exportSecret(locked, PASSPHRASE);

    // Act + Assess
    expect((await decryptFile(file, await loadDecryptionKeys(armored, PASSPHRASE))).equals(expected)).toBe(true);
    await expect(loadDecryptionKeys(armored)).rejects.toThrow(/protected by a passphrase/);
    await expect(loadDecryptionKeys(armored, 'wrong')).rejects.toThrow(/does not unlock/);
  });

  it('takes the key as Base64 of the armored key, as Connect+ does', async () => {
    // Prepare
    const file = encrypted({ recipients: [curve] });
    const base64 = Buffer.from(gpg.exportSecret(curve)).toString('base64');

    // Act + Assess
    expect((await decryptFile(file, await loadDecryptionKeys(base64))).equals(expected)).toBe(true);
  });

  it('refuses a file encrypted to another key', async () => {
    // Prepare
    const file = encrypted({ recipients: [other] });

    // Act + Assess
    await expect(decryptFile(file, await keysFor(rsa))).rejects.toThrow(DecryptionError);
  });

  it.each([false, true])('refuses a tampered file (armored: %s) with an integrity error', async (armor) => {
    // Prepare: flip one byte in the middle of the encrypted data.
    const file = encrypted({ recipients: [rsa], armor, compress: 'none' });
    const bytes = readFileSync(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = armor ? (bytes[at] === 0x41 ? 0x42 : 0x41) : bytes[at]! ^ 0x01;
    writeFileSync(file, bytes);

    // Act + Assess
    await expect(decryptFile(file, await keysFor(rsa))).rejects.toThrow(IntegrityError);
  });

  it('refuses a truncated file with an integrity error', async () => {
    // Prepare
    const file = encrypted({ recipients: [rsa], compress: 'none' });
    truncateSync(file, Math.floor(statSync(file).size * 0.7));

    // Act + Assess
    await expect(decryptFile(file, await keysFor(rsa))).rejects.toThrow(IntegrityError);
  });

  it('checks the vendor signature when configured: good, missing, and by another key', async () => {
    // Prepare
    const vendorPublic = vendor.exportPublic(vendorKey);
    const signed = encrypted({ recipients: [rsa], signWith: vendorKey }, vendor);
    const unsigned = encrypted({ recipients: [rsa] }, vendor);
    const otherSigner = encrypted({ recipients: [rsa], signWith: curve });
    const keys = await keysFor(rsa, undefined, vendorPublic);

    // Act + Assess
    expect((await decryptFile(signed, keys)).equals(expected)).toBe(true);
    await expect(decryptFile(unsigned, keys)).rejects.toThrow(SignatureError);
    await expect(decryptFile(otherSigner, keys)).rejects.toThrow(SignatureError);
  });
});

describe('Function: isPgpData', () => {
  it('recognises armored and binary PGP whatever the name, and not CSV', () => {
    // Prepare
    const binary = readFileSync(encrypted({ recipients: [rsa] }));
    const armor = readFileSync(encrypted({ recipients: [rsa], armor: true }));

    // Act + Assess
    expect(isPgpData(binary)).toBe(true);
    expect(isPgpData(armor)).toBe(true);
    expect(isPgpData(expected)).toBe(false);
    expect(isPgpData(Buffer.from('\uFEFFmember_id,badge\n'))).toBe(false);
  });
});
