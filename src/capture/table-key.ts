/**
 * Which key a captured table is read with, decided from its catalog facts: the configured `key`,
 * else the primary key. A configured key other than the primary key needs REPLICA IDENTITY FULL, so
 * that updates and deletes carry the key's old values. Capture decides with this at start
 * (inspectTables: a refusal is fatal); `syncline doctor` and `syncline init` decide with it too and
 * print the fix, so the three never disagree.
 */

export interface KeyFacts {
  /** Column names in table order. */
  columns: string[];
  /** Primary key columns in key order ([] without one). */
  primaryKey: string[];
  /** pg_class.relreplident: d default (the primary key), n nothing, f full, i an index. */
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
}

export type KeyDecision =
  | { ok: true; key: string[] }
  | { ok: false; code: 'SOURCE_KEY_UNKNOWN' | 'SOURCE_KEY_IDENTITY' | 'SOURCE_NO_KEY'; message: string };

/** `sqlName`: the table as SQL spells it in the fix (default: `source` as configured). */
export function decideKey(pipeline: string, source: string, configured: string[] | undefined, f: KeyFacts, sqlName = source): KeyDecision {
  if (configured) {
    const missing = configured.find((k) => !f.columns.includes(k));
    if (missing !== undefined) return { ok: false, code: 'SOURCE_KEY_UNKNOWN', message: `pipeline ${pipeline}: key column '${missing}' of ${source} does not exist` };
    const sameAsPk = f.primaryKey.length === configured.length && f.primaryKey.every((c, i) => c === configured[i]);
    if (!sameAsPk && f.replicaIdentity !== 'f') {
      return {
        ok: false,
        code: 'SOURCE_KEY_IDENTITY',
        message:
          `pipeline ${pipeline}: table ${source} has configured key (${configured.join(', ')}) that is not its primary key; ` +
          `run ALTER TABLE ${sqlName} REPLICA IDENTITY FULL so updates and deletes carry the key's old values`,
      };
    }
    return { ok: true, key: configured };
  }
  if (f.primaryKey.length > 0) return { ok: true, key: f.primaryKey };
  return { ok: false, code: 'SOURCE_NO_KEY', message: `pipeline ${pipeline}: table ${source} has no primary key; add one, or set REPLICA IDENTITY FULL and configure 'key' for it` };
}
