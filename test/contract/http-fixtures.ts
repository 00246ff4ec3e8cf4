/**
 * The HTTP source's contract fixture: PostgreSQL is the truth (its literals, sessions and readAll, as
 * the PostgreSQL source fixture), and after every write each table touched is exported, whole, to a
 * real local HTTP API (node:http on an ephemeral port) that lists it as an API would:
 *   GET /<table>?cursor=<last id>&limit=<n>  →  {data: [...records], next_cursor: "<id>" | null}
 * ordered by id (keyset cursor). Each export replaces the listing at once, so a page is always of one
 * version of the table. Values are written as a JSON API writes them: int2/int4, float8, bool as JSON
 * numbers and booleans (real as the double it is), int8, numeric, dates, timestamps, uuid, interval
 * as text, jsonb as the nested JSON value.
 *
 * The HTTP source declares its columns with its own types (connectors/http/source/spec.ts), so the
 * fixture keeps the PostgreSQL fixture's type cases an HTTP API can carry and lists the others in
 * `HTTP_EXCLUDED` with the reason (the test file reports each as a skipped case).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { quoteIdent } from '../../connectors/postgres/pgtypes.js';
import { sql } from '../helpers.js';
import type { SourceFixture, SourceSession, TableDef, TypeCase, WriteOp } from './fixtures.js';
import { postgresSource } from './postgres-fixtures.js';

/** The HTTP source's column type for a PostgreSQL column type of the contract. */
export function httpType(pgType: string): string {
  const t = pgType.trim().toLowerCase();
  if (t === 'smallint' || t === 'integer') return 'int';
  if (t === 'bigint') return 'long';
  if (t.startsWith('numeric')) return 'decimal';
  if (t === 'real' || t === 'double precision') return 'double';
  if (t === 'boolean') return 'bool';
  if (t === 'date') return 'date';
  if (t === 'timestamptz') return 'timestamptz';
  if (t === 'jsonb') return 'json';
  return 'string';
}

function valueExpr(col: string, type: string): string {
  const c = quoteIdent(col);
  const t = type.trim().toLowerCase();
  if (t === 'smallint' || t === 'integer' || t === 'bigint' || t === 'boolean' || t === 'double precision' || t === 'jsonb') return c;
  if (t === 'real') return `${c}::float8`;
  return `${c}::text`;
}

/** Type cases (or samples) of the PostgreSQL fixture that an HTTP API cannot carry, and why. */
export const HTTP_EXCLUDED: { column: string; sample?: string; why: string }[] = [
  { column: 'c_numfree', sample: "'NaN'", why: 'JSON has no NaN and the HTTP source\'s decimal takes only numbers and numeric text (a "NaN" text dead-letters its record, by spec)' },
  { column: 'c_double', sample: "'Infinity'", why: 'JSON has no Infinity and the HTTP source\'s double takes only numbers and numeric text' },
  { column: 'c_ts', why: 'the HTTP source has no timestamp-without-zone type: its timestamptz reads an offset-less time as UTC, so a local timestamp cannot round-trip as one' },
  { column: 'c_bytea', why: 'the HTTP source has no bytes type (a base64 text is a string column, not bytes)' },
  { column: 'c_int_arr', why: 'the HTTP source has no array types (a JSON array is a json column, stored as jsonb, not int4[])' },
  { column: 'c_text_arr', why: 'the HTTP source has no array types (a JSON array is a json column, stored as jsonb, not text[])' },
];

const HTTP_TYPES: TypeCase[] = postgresSource.types
  .filter((t) => !HTTP_EXCLUDED.some((x) => x.column === t.column && x.sample === undefined))
  .map((t) => ({ ...t, samples: t.samples.filter((s) => !HTTP_EXCLUDED.some((x) => x.column === t.column && x.sample === s.literal)) }));

/** The `endpoints` entry of a contract table (columns with the PostgreSQL types of the fixture). */
export const httpEndpoint = (url: string, table: string, columns: [string, string][], key: string[], limit: number) => ({
  url: `${url}/${table}`,
  params: { limit: String(limit) },
  pagination: { type: 'cursor', param: 'cursor', path: '$.next_cursor' },
  recordsPath: '$.data',
  columns: Object.fromEntries(columns.map(([n, t]) => [n, { type: httpType(t) }])),
  key,
  mode: 'hash',
});

export interface HttpApi {
  url: string;
  /** Requests answered, by table. */
  requests: Map<string, number>;
}

export function httpSourceFixture(): SourceFixture & { api: HttpApi } {
  const api: HttpApi = { url: '', requests: new Map() };
  return {
    ...postgresSource,
    name: 'http',
    types: HTTP_TYPES,
    api,
    async createSource(id) {
      const db = await postgresSource.createSource(id);
      const defs = new Map<string, TableDef>();
      /** table → its records, ordered by id: [id, JSON text]. */
      const listings = new Map<string, [bigint, string][]>();
      const server: Server = createServer((req, res) => {
        const u = new URL(req.url!, 'http://x');
        const table = u.pathname.slice(1);
        const rows = listings.get(table);
        api.requests.set(table, (api.requests.get(table) ?? 0) + 1);
        if (!rows) {
          res.writeHead(404, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: `no table ${table}` }));
        }
        const limit = Number(u.searchParams.get('limit') ?? 25);
        const after = u.searchParams.has('cursor') ? BigInt(u.searchParams.get('cursor')!) : null;
        const page = rows.filter(([k]) => after === null || k > after).slice(0, limit);
        const next = page.length === limit ? String(page[page.length - 1]![0]) : null;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"data":[${page.map((p) => p[1]).join(',')}],"next_cursor":${JSON.stringify(next)}}`);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const exportTable = async (table: string) => {
        const def = defs.get(table);
        if (!def) throw new Error(`table ${table} was not created through the fixture`);
        if (def.key.length !== 1) throw new Error(`the HTTP fixture lists by a single integer key; ${table} has (${def.key.join(', ')})`);
        const r = await sql(db.database, `select ${quoteIdent(def.key[0]!)}::text as k, json_build_object(${def.columns.map(([n, t]) => `'${n.replace(/'/g, "''")}', ${valueExpr(n, t)}`).join(', ')})::text as j from ${quoteIdent(table)} order by ${quoteIdent(def.key[0]!)}`);
        listings.set(table, r.rows.map((x: { k: string; j: string }) => [BigInt(x.k), x.j]));
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
        drop: async (prefix) => {
          server.closeAllConnections();
          await new Promise<void>((r) => server.close(() => r()));
          await db.drop(prefix);
        },
      };
    },
  };
}
