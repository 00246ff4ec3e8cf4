/**
 * What `syncline init` (src/cli/init.ts) asks of connectors: a source connector reads its system's
 * catalog from a URL and proposes each table (with its key, or left out with the exact fix); a sink
 * connector turns a URL into its config block. Registered as `init` on the source and sink
 * registrations (src/core/registry.ts) under the URL schemes they take; src/cli/init-config.ts
 * renders the file from these, knowing no system.
 */

import { parse as parseYaml } from 'yaml';
import { formatTableName } from './names.js';

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

