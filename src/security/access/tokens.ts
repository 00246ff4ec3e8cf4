/**
 * API tokens: 32 random bytes, base64url, prefixed `slt_` (so a leaked one is recognisable by
 * secret scanners and told apart from a JWT). Only their SHA-256 is kept (`sha256:<hex>` in
 * api.tokens[].hash, usually from the environment). Why a fast hash and no scrypt/argon2: the token
 * has 256 bits of entropy, so a stolen hash cannot be brute-forced whatever its speed, and each
 * request is checked without a 50 ms key-stretching cost (docs/adr/0027-api-access-control.md).
 * Comparison is constant-time over every configured hash (no early exit, no map lookup keyed by the
 * secret), so timing tells nothing about which prefix matched.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOKEN_PREFIX = 'slt_';
const TOKEN_RE = /^slt_[A-Za-z0-9_-]{43}$/;

/** A new token (printed once by `syncline auth token create`). */
export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** The hash line of a token, as configured in api.tokens[].hash. */
export function tokenHash(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

/** Whether a presented string has the shape of one of our tokens (not a proof of anything). */
export function looksLikeToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

/**
 * The index of the configured hash the token matches, or -1. Every hash is compared, in constant
 * time, whatever matched first.
 */
export function findToken(token: string, hashes: readonly string[]): number {
  const mine = createHash('sha256').update(token, 'utf8').digest();
  let found = -1;
  hashes.forEach((h, i) => {
    const theirs = Buffer.from(h.startsWith('sha256:') ? h.slice(7) : '', 'hex');
    const same = theirs.length === mine.length && timingSafeEqual(theirs, mine);
    if (same && found === -1) found = i;
  });
  return found;
}
