import type { ApiItem } from './mapping';

/**
 * Bytes of a packed duplicate key, what makes two records the same earned badge (one customer, one badge, one earn
 * event instant): customerId (float64: a safe integer is exact), the badge id's 12 bytes (24 hex characters, either
 * case), earnEventDate (float64).
 */
export const KEY_BYTES = 28;

/** Packs the item's duplicate key into `into` at `at` (KEY_BYTES bytes). */
export function packKey(item: ApiItem, into: Buffer, at = 0): void {
  into.writeDoubleLE(item.customerId, at);
  // Validated as 24 hex characters, so it fills the 12 bytes exactly; hex decoding ignores case.
  into.write(item.badgeMetaId, at + 8, 12, 'hex');
  into.writeDoubleLE(item.earnEventDate, at + 20);
}
