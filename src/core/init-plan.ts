/**
 * What `syncline init` (src/cli/init.ts) asks of connectors: a source connector reads its system's
 * catalog from a URL and proposes each table (with its key, or left out with the exact fix); a sink
 * connector turns a URL into its config block. Registered as `init` on the source and sink
 * registrations (src/core/registry.ts) under the URL schemes they take; src/cli/init-config.ts
 * renders the file from these, knowing no system.
 */

import { parse as parseYaml } from 'yaml';
import { formatTableName } from './names.js';
import { fatal } from './errors.js';

/** A table the config names as `schema.table` (MariaDB: database.table). */
export interface TableName {
  schema: string;
  table: string;
}

/** One end of the pipeline, from its URL. */
export interface InitEndpoint {
  /** The connector type (`type:` of the block). */
  type: string;
  /** The URL without its password, to show. */
  shown: string;
  /** Where it is: a target at the source's place is refused. */
  at: { host: string; port: number; database: string };
  /** Only to connect; never written. */
  password?: string;
  /**
   * The lines of its config block below `source:` / `target:` (indented six spaces: type,
   * connection, the connector's own options with comments), the password as `${passwordVar}`.
   */
  lines(passwordVar: string | undefined, pipeline: string): string[];
  /** As a target: the name a source table gets there, when not its own (MariaDB: the target's database, same table name). */
  targetTable?(source: TableName): TableName;
}

/** A source table as init proposes it. */
export interface TablePlan {
  /** The table in the source. */
  at: TableName;
  /** How the config names it (null: it cannot yet). */
  name: string | null;
  /** The key the entry gets (included), or the key to add with the fix (left out). */
  key: string[];
  /** Why the key is that: 'primary key', 'unique index x', 'every column: …'. */
  keyFrom: string;
  included: boolean;
  /** Left out, but can be added after the fix (with `key`). */
  addable: boolean;
  /** Why it is left out. */
  reason?: string;
  /** Statements to run on the source before adding it. */
  fix: string[];
  /** What to say instead of the statements when there are none (e.g. "its REPLICA IDENTITY is already FULL"). */
  addNote?: string;
  /** The comment listing it: `schema.table: id bigint NOT NULL, …` (unwrapped; the renderer wraps it). */
  columns: { table: string; columns: string[] };
}

export interface InitSource {
  /** URL schemes it takes, with the colon: 'postgres:'. */
  schemes: string[];
  /** The URL as an endpoint; throws INIT_ARGUMENT naming `what` (--source) for anything it cannot honour. */
  parse(url: string, what: string): InitEndpoint;
  /** The schema of a `--tables` name written without one (PostgreSQL: public; MariaDB: the URL's database). */
  defaultSchema(e: InitEndpoint): string;
  /** The tables (those asked, or every table of the database), sorted; a table asked for that does not exist is absent. */
  read(e: InitEndpoint, asked: TableName[] | 'all'): Promise<TablePlan[]>;
  /** The target when none is given: the source's server, database `<database>_target`. */
  defaultTarget(e: InitEndpoint): InitEndpoint;
}

export interface InitTarget {
  schemes: string[];
  parse(url: string, what: string): InitEndpoint;
}

/**
 * A YAML scalar for a string: plain when YAML reads it back as that same string (not a number, a
 * boolean, null…), else double-quoted; `${` escaped as `$${` (config interpolation).
 */
export function yamlValue(s: string): string {
  const escaped = s.replace(/\$\{/g, () => '$${'); // a function: in a replacement string $$ means $
  return /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(escaped) && parseYaml(escaped) === escaped ? escaped : JSON.stringify(escaped);
}

/** A name inside a comment: as it is when plain, else JSON-quoted (a newline cannot end the comment). */
export const show = (s: string) => (/^[A-Za-z_][A-Za-z0-9_$.]*$/.test(s) ? s : JSON.stringify(s));


/** How the config names a table: `schema.table`, each part quoted where it needs it (src/core/names.ts). */
export function configTableName(schema: string, table: string): string | null {
  return formatTableName({ schema, table });
}


/**
 * A connection URL of one of `protocols` ('postgres:'), with its host: throws INIT_ARGUMENT naming
 * `what` (--source) and the expected form for anything else.
 */
export function parseInitUrl(text: string, what: string, protocols: string[], example: string): { url: URL; host: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fatal('INIT_ARGUMENT', `${what}: not a URL (expected ${example})`);
  }
  if (!protocols.includes(url.protocol)) throw fatal('INIT_ARGUMENT', `${what}: expected a ${protocols.map((p) => `${p}//`).join(' or ')} URL, got ${url.protocol}//…`);
  const host = decodeURIComponent(url.hostname).replace(/^\[(.*)\]$/, '$1');
  if (!host) throw fatal('INIT_ARGUMENT', `${what}: the URL names no host (expected ${example})`);
  return { url, host };
}

/** Column names Avro cannot carry, each with a name free among them and `others` (`order no` → `order_no`), in column order. */
export function avroRenames(columns: string[], isValid: (name: string) => boolean, others: string[] = []): Map<string, string> {
  const renames = new Map<string, string>();
  const taken = new Set([...columns, ...others]);
  for (const col of columns.filter((c) => !isValid(c))) {
    let to = col.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=[0-9]|$)/, '_');
    while (taken.has(to)) to += '_';
    taken.add(to);
    renames.set(col, to);
  }
  return renames;
}

/** The unique index a table without a primary key is keyed by: the fewest columns, then by name. */
export function keyCandidate<T extends { index: string; columns: string[] }>(uniqueKeys: T[]): T | undefined {
  return [...uniqueKeys].sort((a, b) => a.columns.length - b.columns.length || a.index.localeCompare(b.index))[0];
}

/** The `connection:` block of a config (host, port, database, user, the password as `${passwordVar}`, ssl), indented for a source/target block. */
export function connectionLines(c: { host: string; port: number; database: string; user: string; ssl: boolean }, passwordVar: string | undefined): string[] {
  return [
    '      connection:',
    `        host: ${yamlValue(c.host)}`,
    `        port: ${c.port}`,
    `        database: ${yamlValue(c.database)}`,
    `        user: ${yamlValue(c.user)}`,
    ...(passwordVar ? [`        password: \${${passwordVar}}`] : []),
    ...(c.ssl ? ['        ssl: true'] : []),
  ];
}
