import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PollDialect, PollRelation } from './dialect.js';
import { digestQuery, keyPageQuery, trackedPageQuery } from './queries.js';
import { stringifyTagged } from '../../core/tagged-json.js';
import type { SourceColumn } from '../source.js';

const c = (name: string, pgType = 'int4'): SourceColumn => ({ name, type: { kind: 'int', pgType } });
const rel: PollRelation = { schema: 's', table: 't', key: ['b', 'a'], columns: [c('a'), c('b', 'text'), c('at', 'timestamptz')], from: '"s"."t" __p' };
const keyCols = [rel.columns[1]!, rel.columns[0]!];

/** A dialect with numbered placeholders (as PostgreSQL's) or positional ones (as MariaDB's). */
function dialect(numbered: boolean): PollDialect {
  return {
    system: 'Test', where: 'here', database: 'db',
    connect: async () => undefined, close: async () => undefined, describe: async () => rel,
    id: (n) => `"${n}"`,
    param: (n, col) => (numbered ? `$${n}${col ? `::${col.type.pgType}` : ''}` : '?'),
    select: (col) => `__p."${col.name}"`,
    rowHash: () => 'H',
    hashSum: (h) => `SUM(${h})`,
    after: (e, _c, mode, wm, ov) => (ov === null ? `${e} > ${wm}` : `${e} > ${wm} - ${mode}(${ov})`),
    query: async () => [], canonical: (v) => v as string, classify: () => { throw new Error('no'); },
  };
}

test('digest and key pages: (lo, hi] over a composite key, keyset after the last key, parameters in placeholder order', () => {
  const d = dialect(true);
  const range = { lo: stringifyTagged(['k1', '5']), hi: stringifyTagged(['k3', '9']) };
  assert.deepEqual(digestQuery(d, rel, keyCols, range), {
    sql: 'SELECT count(*), SUM(H) FROM "s"."t" __p WHERE (__p."b", __p."a") > ($1::text, $2::int4) AND (__p."b", __p."a") <= ($3::text, $4::int4)',
    params: ['k1', '5', 'k3', '9'],
  });
  assert.deepEqual(keyPageQuery(d, rel, keyCols, { lo: null, hi: range.hi }, ['k2', '7'], 100), {
    sql: 'SELECT __p."a", __p."b", __p."at", H FROM "s"."t" __p WHERE (__p."b", __p."a") <= ($1::text, $2::int4) AND (__p."b", __p."a") > ($3::text, $4::int4) ORDER BY __p."b", __p."a" LIMIT 100',
    params: ['k3', '9', 'k2', '7'],
  });
  assert.equal(keyPageQuery(d, rel, keyCols, { lo: null, hi: null }, null, 5).sql, 'SELECT __p."a", __p."b", __p."at", H FROM "s"."t" __p ORDER BY __p."b", __p."a" LIMIT 5');
});

test('tracked pages: watermark minus overlap, then (column, key) keyset; positional placeholders get their values in text order', () => {
  const at = rel.columns[2]!;
  const q = trackedPageQuery(dialect(false), rel, at, keyCols, 'timestamp', '2026-01-01 00:00:00+00', 5000, ['2026-01-01 00:00:01+00', 'k', '1'], 10);
  assert.equal(q.sql, 'SELECT __p."a", __p."b", __p."at", H FROM "s"."t" __p WHERE __p."at" IS NOT NULL AND __p."at" > ? - timestamp(?) AND (__p."at", __p."b", __p."a") > (?, ?, ?) ORDER BY __p."at", __p."b", __p."a" LIMIT 10');
  assert.deepEqual(q.params, ['2026-01-01 00:00:00+00', 5000, '2026-01-01 00:00:01+00', 'k', '1']);
  // No watermark yet: every row with the column set; no overlap: a plain '>'.
  assert.equal(trackedPageQuery(dialect(true), rel, at, keyCols, 'version', null, 0, null, 10).sql, 'SELECT __p."a", __p."b", __p."at", H FROM "s"."t" __p WHERE __p."at" IS NOT NULL ORDER BY __p."at", __p."b", __p."a" LIMIT 10');
  assert.match(trackedPageQuery(dialect(true), rel, at, keyCols, 'version', '7', 0, null, 10).sql, /WHERE __p."at" IS NOT NULL AND __p."at" > \$1::timestamptz ORDER BY/);
});
