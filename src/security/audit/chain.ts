/**
 * The audit chain's pure parts: the canonical form of an entry, its hash, the signed checkpoint
 * statement, and verification of a chain read back from the store (docs/adr/0028-audit-trail.md).
 *
 *   canonical(entry) = JSON of {seq, id, at, actor, role, action, object, details} with object keys
 *                      sorted (recursively, by UTF-16 code unit), no whitespace, `at` an ISO-8601
 *                      UTC time with milliseconds, absent role/object as null.
 *   hash             = hex SHA-256 of the UTF-8 bytes of (prevHash ‖ canonical(entry)), prevHash
 *                      being the previous entry's hash (64 hex digits) or 64 zeros for seq 1.
 *   checkpoint       = {seq, hash, at, keyId} (canonical JSON, prefixed 'syncline-audit-checkpoint:v1\n')
 *                      signed with Ed25519; keyId = first 16 hex digits of SHA-256 of the public key (SPKI DER).
 */
import { createHash, sign, verify as verifySignature, type KeyObject } from 'node:crypto';

export const GENESIS = '0'.repeat(64);

/** A JSON value as the audit trail keeps it (no undefined, no bigint, finite numbers). */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface AuditEntry {
  seq: number;
  /** Random id given when the action was recorded (a retried append after an ambiguous commit finds it). */
  id: string;
  /** ISO-8601 UTC, milliseconds. */
  at: string;
  actor: string;
  role: string | null;
  action: string;
  object: string | null;
  details: { [k: string]: Json };
  prevHash: string;
  hash: string;
}

export interface Checkpoint {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  /** base64 Ed25519 signature of checkpointStatement(). */
  signature: string;
}

export function canonicalJson(v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k]!)}`).join(',')}}`;
}

export function canonicalEntry(e: Omit<AuditEntry, 'prevHash' | 'hash'>): string {
  return canonicalJson({ seq: e.seq, id: e.id, at: e.at, actor: e.actor, role: e.role, action: e.action, object: e.object, details: e.details });
}

export function entryHash(prevHash: string, e: Omit<AuditEntry, 'prevHash' | 'hash'>): string {
  return createHash('sha256').update(prevHash + canonicalEntry(e), 'utf8').digest('hex');
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function checkpointStatement(c: Omit<Checkpoint, 'signature'>): Buffer {
  return Buffer.from(`syncline-audit-checkpoint:v1\n${canonicalJson({ seq: c.seq, hash: c.hash, at: c.at, keyId: c.keyId })}`, 'utf8');
}

export function signCheckpoint(c: Omit<Checkpoint, 'signature' | 'keyId'>, privateKey: KeyObject, publicKey: KeyObject): Checkpoint {
  const body = { ...c, keyId: keyIdOf(publicKey) };
  return { ...body, signature: sign(null, checkpointStatement(body), privateKey).toString('base64') };
}

export function checkpointValid(c: Checkpoint, publicKey: KeyObject): boolean {
  try {
    return c.keyId === keyIdOf(publicKey) && verifySignature(null, checkpointStatement(c), publicKey, Buffer.from(c.signature, 'base64'));
  } catch {
    return false;
  }
}

export interface VerifyProblem {
  /** The entry (or checkpoint) concerned. */
  seq: number;
  kind: 'altered' | 'missing' | 'reordered' | 'broken-link' | 'bad-checkpoint' | 'checkpoint-mismatch' | 'uncovered' | 'unanchored';
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  entries: number;
  checkpoints: number;
  /** Seq range checked. */
  first?: number;
  last?: number;
  /** The checkpoint the chain starts from after pruning (seq 0: the genesis). */
  anchor: number;
  problems: VerifyProblem[];
}

export interface VerifyOptions {
  /** Without a public key, checkpoint signatures cannot be checked: reported as a problem. */
  publicKey?: KeyObject;
  /** Entries older than this (ms before `now`) must be covered by a checkpoint. */
  coverWithinMs?: number;
  now?: Date;
}

/**
 * Verify a chain (entries in the order the store returns them, by seq) against its checkpoints.
 * Every problem is listed, the first one (lowest seq) first: an entry whose stored hash is not the
 * hash of its content (altered), a gap in seq (missing), an entry out of seq order or linked to
 * another predecessor (reordered), a checkpoint with a bad signature or whose hash differs from the
 * entry at its seq (a rewritten chain), entries that no checkpoint covers although they should be.
 */
export function verifyChain(entries: AuditEntry[], checkpoints: Checkpoint[], o: VerifyOptions = {}): VerifyResult {
  const problems: VerifyProblem[] = [];
  const res = (): VerifyResult => ({
    ok: problems.length === 0, entries: entries.length, checkpoints: checkpoints.length,
    first: entries[0]?.seq, last: entries.at(-1)?.seq, anchor, problems: problems.sort((a, b) => a.seq - b.seq),
  });
  let anchor = 0;
  const good = new Map<number, Checkpoint>();
  for (const c of checkpoints) {
    if (!o.publicKey) problems.push({ seq: c.seq, kind: 'bad-checkpoint', message: `checkpoint at seq ${c.seq}: no public key to check its signature (audit.publicKey or audit.signingKey)` });
    else if (!checkpointValid(c, o.publicKey)) problems.push({ seq: c.seq, kind: 'bad-checkpoint', message: `checkpoint at seq ${c.seq} (${c.at}): signature does not verify with key ${keyIdOf(o.publicKey)}${c.keyId !== keyIdOf(o.publicKey) ? ` (it names key ${c.keyId})` : ''}: the checkpoint was forged or altered` });
    else good.set(c.seq, c);
  }
  // Where the chain starts: seq 1 after the genesis, or right after a signed checkpoint (pruned before it).
  const head = entries[0];
  let prevHash = GENESIS;
  let expected = 1;
  if (head && head.seq !== 1) {
    const c = good.get(head.seq - 1);
    if (c) {
      anchor = c.seq;
      prevHash = c.hash;
      expected = head.seq;
    } else {
      const older = [...good.keys()].filter((s) => s < head.seq).sort((a, b) => b - a)[0];
      problems.push({ seq: head.seq - 1, kind: 'missing', message: `entries before seq ${head.seq} are missing and no signed checkpoint at seq ${head.seq - 1} accounts for them (pruning stops at a checkpoint)${older !== undefined ? `; the last signed checkpoint before is at seq ${older}` : ''}: the first missing entry is seq ${older !== undefined ? older + 1 : 1}` });
      prevHash = head.prevHash;
      expected = head.seq;
    }
  }
  const hashAt = new Map(entries.map((e) => [e.hash, e.seq]));
  for (const e of entries) {
    if (e.seq !== expected) {
      if (e.seq > expected) problems.push({ seq: expected, kind: 'missing', message: `entry seq ${expected}${e.seq - expected > 1 ? `..${e.seq - 1}` : ''} is missing (the next one present is seq ${e.seq})` });
      else problems.push({ seq: e.seq, kind: 'reordered', message: `entry seq ${e.seq} (${e.action}) comes out of order after seq ${expected - 1}` });
    }
    if (e.prevHash !== prevHash && e.seq === expected) {
      const later = hashAt.get(e.prevHash);
      if (later !== undefined && later > e.seq) problems.push({ seq: e.seq, kind: 'reordered', message: `entry seq ${e.seq} (${e.at} ${e.action} by ${e.actor}) is chained after seq ${later}: entries ${e.seq} and ${later} were reordered` });
      else problems.push({ seq: e.seq, kind: 'broken-link', message: `entry seq ${e.seq} (${e.at} ${e.action}) links to previous hash ${e.prevHash.slice(0, 16)}…, but entry seq ${e.seq - 1} hashes to ${prevHash.slice(0, 16)}…: the entry before it was replaced` });
    }
    const computed = entryHash(e.prevHash, e);
    if (computed !== e.hash) problems.push({ seq: e.seq, kind: 'altered', message: `entry seq ${e.seq} (${e.at} ${e.action} by ${e.actor}) was altered: its content hashes to ${computed.slice(0, 16)}…, the stored hash is ${e.hash.slice(0, 16)}…` });
    const c = good.get(e.seq);
    if (c && c.hash !== e.hash) problems.push({ seq: e.seq, kind: 'checkpoint-mismatch', message: `entry seq ${e.seq} hashes to ${e.hash.slice(0, 16)}…, but the checkpoint signed at ${c.at} says ${c.hash.slice(0, 16)}…: the chain up to seq ${e.seq} was rewritten` });
    prevHash = e.hash;
    expected = Math.max(expected, e.seq) + 1;
  }
  // A checkpoint past the end: entries after the tip were removed.
  const last = entries.at(-1)?.seq ?? anchor;
  for (const c of good.values()) if (c.seq > last) problems.push({ seq: last + 1, kind: 'missing', message: `a signed checkpoint covers seq ${c.seq}, but the chain ends at seq ${last}: entries ${last + 1}..${c.seq} are missing` });
  // Entries no checkpoint covers although one should have been written since (deleted checkpoints).
  if (o.coverWithinMs !== undefined) {
    const covered = Math.max(anchor, ...good.keys());
    const now = (o.now ?? new Date()).getTime();
    const stale = entries.find((e) => e.seq > covered && now - Date.parse(e.at) > o.coverWithinMs!);
    if (stale) problems.push({ seq: stale.seq, kind: 'uncovered', message: `entry seq ${stale.seq} (${stale.at}) and later are covered by no signed checkpoint although one is written at least every ${Math.round(o.coverWithinMs / 2000)} s: checkpoints were deleted, or no process with the signing key ran` });
  }
  return res();
}
