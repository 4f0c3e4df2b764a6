import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

const BADGES = ['6571a3b9e4b0c1a2b3c4d5e6', '6571a3b9e4b0c1a2b3c4d5e7', '6571a3b9e4b0c1a2b3c4d5e8'];

/**
 * Writes a weekly-events file of `rows` records in the example configuration's layout; one record in 50 is bad
 * (an impossible date or a bad customer id), so validation and the rejects writer are exercised too.
 */
export async function generateEvents(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  const pad = (n: number) => (n < 10 ? `0${n}` : String(n));
  out.write('member_id,badge_code,event_time,expiry_date,channel\n');
  let buffer = '';
  for (let i = 1; i <= rows; i++) {
    const day = 1 + (i % 28);
    const member = i % 50 === 7 ? 'N/A' : String(1_000_000 + i);
    const event = i % 50 === 19 ? `2026-02-30 10:00:00` : `2026-10-${pad(day)} ${pad(i % 24)}:${pad(i % 60)}:${pad((i * 7) % 60)}`;
    buffer += `${member},${BADGES[i % 3]},${event},2027-${pad(1 + (i % 12))}-${pad(day)},${i % 4 === 0 ? '"web, mobile"' : 'app'}\n`;
    if (buffer.length > 1 << 16) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer);
  await once(out, 'finish');
}
