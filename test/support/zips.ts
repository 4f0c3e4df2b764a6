import { execFileSync } from 'node:child_process';

/**
 * Builds a zip with Python's zipfile (python3 is on every machine of this kind). `entries` maps archive paths to
 * contents; `encrypted` names entries whose "encrypted" flag is set, as an encrypting tool would.
 */
export function makeZip(path: string, entries: Record<string, string | { zeros: number }>, encrypted: string[] = []): void {
  const script = `
import json, sys, zipfile
entries, encrypted, path = json.loads(sys.stdin.read()), set(json.loads(sys.argv[1])), sys.argv[2]
with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
    for name, content in entries.items():
        data = bytes(content['zeros']) if isinstance(content, dict) else content.encode('utf-8')
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
# zipfile resets the flags it writes: set bit 0 ("encrypted") in the headers of the named entries afterwards.
raw = bytearray(open(path, 'rb').read())
for sig, flag_at, name_len_at, name_at in ((b'PK\x03\x04', 6, 26, 30), (b'PK\x01\x02', 8, 28, 46)):
    pos = raw.find(sig)
    while pos != -1:
        length = int.from_bytes(raw[pos + name_len_at:pos + name_len_at + 2], 'little')
        if raw[pos + name_at:pos + name_at + length].decode('utf-8') in encrypted:
            raw[pos + flag_at] |= 0x1
        pos = raw.find(sig, pos + 4)
open(path, 'wb').write(bytes(raw))
`;
  // The entries go through stdin: thousands of them would be over the 128 KiB an argument may hold.
  execFileSync('python3', ['-c', script, JSON.stringify(encrypted), path], { input: JSON.stringify(entries) });
}
