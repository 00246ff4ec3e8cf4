/**
 * The file source's contract fixture: PostgreSQL is the truth (its literals, sessions and readAll, as
 * the PostgreSQL source fixture), and after every write each table touched is exported, whole, to
 * `<dir>/<table>.jsonl` (written under a dot name, then renamed, as a careful writer does). The file
 * source reads those files: every write the contract makes becomes a new version of a file, with
 * rows inserted, changed and removed. Values are written as a file producer would: numbers, dates
 * and times as text, booleans and arrays as JSON, bytea as base64, jsonb as its text.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quoteIdent } from '../../connectors/postgres/pgtypes.js';
import { sql } from '../helpers.js';
import type { SourceFixture, SourceSession, TableDef, WriteOp } from './fixtures.js';
import { postgresSource } from './postgres-fixtures.js';

export function valueExpr(col: string, type: string): string {
  const c = quoteIdent(col);
  const t = type.trim().toLowerCase();
  if (t.endsWith('[]')) return `to_jsonb(${c})`;
  if (t === 'boolean' || t === 'bool') return c;
  if (t === 'bytea') return `encode(${c}, 'base64')`;
  return `${c}::text`;
}

/** The file source's `tables` entry of a contract table (columns with the PostgreSQL types of the fixture). */
export const fileTable = (table: string, columns: [string, string][], key: string[]) => ({
  table: `public.${table}`, glob: `${table}.jsonl`, format: 'jsonl', key, columns: Object.fromEntries(columns),
});

export function fileSourceFixture(dir: string): SourceFixture {
  return {
    ...postgresSource,
    name: 'file',
    async createSource(id) {
      const db = await postgresSource.createSource(id);
      const defs = new Map<string, TableDef>();
      const exportTable = async (table: string) => {
        const def = defs.get(table);
        if (!def) throw new Error(`table ${table} was not created through the fixture`);
        const r = await sql(db.database, `select json_build_object(${def.columns.map(([n, t]) => `'${n.replace(/'/g, "''")}', ${valueExpr(n, t)}`).join(', ')})::text as j from ${quoteIdent(table)} order by ${def.key.map(quoteIdent).join(', ')}`);
        const tmp = join(dir, `.${table}.jsonl.tmp`);
        writeFileSync(tmp, r.rows.map((x: { j: string }) => x.j + '\n').join(''));
        renameSync(tmp, join(dir, `${table}.jsonl`));
      };
      return {
        ...db,
        createTable: async (t) => {
          await db.createTable(t);
          defs.set(t.name, t);
          await exportTable(t.name);
        },
        insertLiterals: async (table, rows) => {
          await db.insertLiterals(table, rows);
          await exportTable(table);
        },
        updateLiterals: async (table, key, set) => {
          await db.updateLiterals(table, key, set);
          await exportTable(table);
        },
        session: async () => {
          const s = await db.session();
          const session: SourceSession = {
            transaction: async (ops: WriteOp[]) => {
              await s.transaction(ops);
              for (const table of new Set(ops.map((o) => o.table))) await exportTable(table);
            },
            close: () => s.close(),
          };
          return session;
        },
      };
    },
  };
}
