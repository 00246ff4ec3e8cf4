/**
 * DDL the PostgreSQL sink writes for autoCreate and autoEvolve, as pure functions: the target type
 * of a source column, CREATE TABLE, and the grant a refused creation needs.
 *
 * Type mapping (README: Types). The changes carry each column's source SQL type (the "pgType" of its
 * Avro field, ./pgtypes.ts sqlTypeName): built-in types print unqualified with their
 * modifier (`int8`, `varchar(200)`, `numeric(12,2)`, `timestamptz(3)`, `text[]`, `"char"`) and are
 * used as they are; a type from another schema (enum, domain, composite, extension type such as
 * citext) prints qualified (`public.mood`) and is used only when the target has a type of that name
 * (then spelled as the target's format_type prints it), otherwise `text` (`text[]` for an array):
 * values travel in their text form either way. A column whose type the change does not carry gets
 * `text`. Only the key columns are NOT NULL (primary key); no defaults, checks, indexes, identity or
 * generated expressions are copied.
 */
import { parseTableName } from '../../src/core/names.js';

export const quoteIdent = (s: string) => '"' + s.replace(/"/g, '""') + '"';

/** 'schema.table' (canonical, src/core/names.ts) → `"schema"."table"`. */
export function quoteTable(table: string): string {
  const n = parseTableName(table);
  return quoteIdent(n.schema) + '.' + quoteIdent(n.table);
}

/** A column type hint is pasted into DDL: type-name characters only. */
export const TYPE_HINT_RE = /^[A-Za-z_][A-Za-z0-9_ ."(),[\]]*$/;

/** Whether a printed type names a type outside pg_catalog: qualified, a '.' outside quotes and parentheses. */
export function isQualifiedType(pgType: string): boolean {
  let depth = 0;
  let quoted = false;
  for (const c of pgType) {
    if (c === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '.' && depth === 0) return true;
  }
  return false;
}

/** The target type for a source type, given how the target spells that type (undefined: it has none). */
export function targetType(pgType: string | undefined, onTarget: string | undefined): string {
  if (pgType === undefined) return 'text';
  if (!isQualifiedType(pgType)) return pgType;
  if (onTarget !== undefined) return onTarget;
  return pgType.endsWith('[]') ? 'text[]' : 'text';
}

export interface NewColumn {
  name: string;
  type: string;
}

/**
 * `CREATE TABLE "s"."t" ("id" int8 NOT NULL, "name" text, PRIMARY KEY ("id"))`: the columns in the
 * source's order, the key columns (in key order) as primary key. Column types must already be
 * target types (targetType); names are quoted.
 */
export function createTableSql(table: string, columns: NewColumn[], key: string[]): string {
  const keys = new Set(key);
  const cols = columns.map((c) => `${quoteIdent(c.name)} ${c.type}${keys.has(c.name) ? ' NOT NULL' : ''}`);
  return `CREATE TABLE ${quoteTable(table)} (${[...cols, `PRIMARY KEY (${key.map(quoteIdent).join(', ')})`].join(', ')})`;
}

/**
 * The columns of a new table: every column the changes' schema names (in its order), then columns a
 * record writes that the schema does not name, then key columns named by neither; types mapped by
 * targetType with `onTarget` (qualified source type → the target's spelling of it, when it has one).
 */
export function newTableColumns(key: string[], sourceTypes: Record<string, string>, written: Iterable<string>, onTarget: Map<string, string>): NewColumn[] {
  const out: NewColumn[] = [];
  const seen = new Set<string>();
  const add = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const t = sourceTypes[name];
    out.push({ name, type: targetType(t, t === undefined ? undefined : onTarget.get(t)) });
  };
  for (const c of Object.keys(sourceTypes)) add(c);
  for (const c of written) add(c);
  for (const c of key) add(c);
  return out;
}

/** What a role needs to create `table`, and the statement that grants it. */
export function createGrant(table: string, user: string, database: string, schemaExists: boolean): { missing: string; grant: string } {
  const { schema } = parseTableName(table);
  return schemaExists
    ? { missing: `CREATE on schema ${quoteIdent(schema)}`, grant: `GRANT CREATE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(user)};` }
    : { missing: `CREATE on database ${quoteIdent(database)} (schema ${quoteIdent(schema)} does not exist either)`, grant: `GRANT CREATE ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(user)};` };
}
