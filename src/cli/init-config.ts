/**
 * The config `syncline init` writes, from the catalog facts of the source tables: pure functions,
 * no I/O (src/cli/init.ts reads the catalog and writes the file).
 *
 * What the file holds: one pipeline; every table that can be captured as it is, with its key and a
 * comment listing its columns and their SQL types; every table that cannot, in comments, with the
 * exact fix (the SQL to run on the source, then the `key:` to add); the connections with every
 * password replaced by a `${ENV}` reference (the password of a URL never reaches the file). Every
 * value goes through yamlValue(), so no name can break the YAML or be read as a `${…}` reference.
 */
import { parse as parseYaml } from 'yaml';
import { formatTableName } from '../core/names.js';
import { fatal } from '../core/errors.js';
import { decideKey } from '../capture/table-key.js';
import { sqlIdent, sqlTable, type TableFacts } from '../../connectors/postgres/introspect.js';
import { isAvroName } from '../core/avro.js';

export interface PgUrl {
  host: string;
  port: number;
  database: string;
  user: string;
  /** Only to connect; never written. */
  password?: string;
  ssl: boolean;
  /** sslmode=require: TLS without verifying the certificate (verify-ca and verify-full verify). */
  sslVerify: boolean;
}

/**
 * `postgres://user:password@host:port/database?sslmode=require`, as libpq reads it (database
 * defaults to the user name; sslmode require/verify-ca/verify-full means TLS). Throws a readable
 * error for anything else.
 */
export function parsePgUrl(text: string, what: string): PgUrl {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw fatal('INIT_ARGUMENT', `${what}: not a URL (expected postgres://user:password@host:port/database)`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw fatal('INIT_ARGUMENT', `${what}: expected a postgres:// or postgresql:// URL, got ${u.protocol}//…`);
  const host = decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1');
  if (!host) throw fatal('INIT_ARGUMENT', `${what}: the URL names no host (expected postgres://user:password@host:port/database)`);
  const user = decodeURIComponent(u.username) || 'postgres';
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || user;
  const port = u.port ? Number(u.port) : 5432;
  const sslmode = u.searchParams.get('sslmode');
  for (const k of u.searchParams.keys()) {
    if (k !== 'sslmode') throw fatal('INIT_ARGUMENT', `${what}: URL parameter '${k}' is not supported (only sslmode)`);
  }
  if (sslmode !== null && !['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'].includes(sslmode)) throw fatal('INIT_ARGUMENT', `${what}: unknown sslmode '${sslmode}'`);
  return { host, port, database, user, password: u.password ? decodeURIComponent(u.password) : undefined, ssl: sslmode === 'require' || sslmode === 'verify-ca' || sslmode === 'verify-full', sslVerify: sslmode !== 'require' };
}

/** The URL without its password, to show. */
export function showUrl(u: PgUrl): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  return `postgres://${encodeURIComponent(u.user)}@${host}:${u.port}/${encodeURIComponent(u.database)}`;
}

/**
 * `--tables a,schema.b,"Odd, Name"."T"`: a comma-separated list of `table` (schema public) or
 * `schema.table`; names are taken as written (no case folding, as in the config); a name holding
 * `.`, `,` or `"` is written in double quotes with `""` for a quote.
 */
export function parseTableList(text: string): { schema: string; table: string }[] {
  const out: { schema: string; table: string }[] = [];
  let parts: string[] = [];
  let cur = '';
  let quoted = false;
  let wasQuoted = false;
  const endPart = () => {
    const name = wasQuoted ? cur : cur.trim();
    if (name === '') throw fatal('INIT_ARGUMENT', `--tables: an empty name in '${text}'`);
    parts.push(name);
    cur = '';
    wasQuoted = false;
  };
  const endItem = () => {
    endPart();
    if (parts.length > 2) throw fatal('INIT_ARGUMENT', `--tables: '${parts.join('.')}' has more than schema.table (quote a name that holds a dot: "a.b")`);
    out.push(parts.length === 2 ? { schema: parts[0]!, table: parts[1]! } : { schema: 'public', table: parts[0]! });
    parts = [];
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cur += '"'), i++;
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur.trim() === '') (quoted = true), (wasQuoted = true), (cur = '');
    else if (ch === '.') endPart();
    else if (ch === ',') endItem();
    else if (wasQuoted) {
      if (ch.trim() !== '') throw fatal('INIT_ARGUMENT', `--tables: unexpected '${ch}' after a quoted name in '${text}'`);
    } else cur += ch;
  }
  if (quoted) throw fatal('INIT_ARGUMENT', `--tables: unterminated quote in '${text}'`);
  endItem();
  return out;
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
const show = (s: string) => (/^[A-Za-z_][A-Za-z0-9_$.]*$/.test(s) ? s : JSON.stringify(s));

/** A file name as a shell word inside a comment. */
const shellWord = (s: string) => (/^[A-Za-z0-9_.\/-]+$/.test(s) ? s : /[\n\r]/.test(s) ? JSON.stringify(s) : `'${s.replace(/'/g, `'\\''`)}'`);

/** How the config names a table: `schema.table`, each part quoted where it needs it (src/core/names.ts). */
export function configTableName(schema: string, table: string): string | null {
  return formatTableName({ schema, table });
}

export interface TablePlan {
  facts: TableFacts;
  /** How the config names it (null: it cannot yet). */
  name: string | null;
  /** The key the entry gets (included), or the key to add with the fix (excluded). */
  key: string[];
  /** Why the key is that: 'primary key', 'unique index x', 'every column'. */
  keyFrom: string;
  included: boolean;
  /** Left out, but can be added after the fix (with `key`). */
  addable: boolean;
  /** Why it is left out, and the SQL to run on the source first. */
  reason?: string;
  fix: string[];
}

/**
 * Include a table as it is, or leave it out with the exact fix: SQL to run on the source (column
 * renames to valid Avro names, the replica identity), then the entry to add with its key.
 */
export function planTable(f: TableFacts): TablePlan {
  const name = configTableName(f.schema, f.table);
  const shown = `${show(f.schema)}.${show(f.table)}`;
  const candidate = [...f.uniqueKeys].sort((a, b) => a.columns.length - b.columns.length || a.index.localeCompare(b.index))[0];
  // Generated columns are not published (PostgreSQL 15): neither keys nor schema fields.
  const published = f.columns.filter((c) => !c.generated).map((c) => c.name);
  const sourceKey = f.primaryKey.length > 0 ? f.primaryKey : candidate ? candidate.columns : published;
  const keyFrom = f.primaryKey.length > 0 ? 'primary key' : candidate ? `unique index ${show(candidate.index)}` : 'every column: keep the ones that identify a row';
  const out = (included: boolean, addable: boolean, reason: string | undefined, fix: string[], key = sourceKey): TablePlan => ({ facts: f, name, key, keyFrom, included, addable, reason, fix });
  if (name === null) return out(false, false, `the config's table pattern cannot name ${shown} yet (rename it, or capture a view of it under a plain name)`, []);
  if (f.kind === 'p') return out(false, false, `${shown} is partitioned: its changes are published under its partitions' names; list the partitions instead`, []);

  const reasons: string[] = [];
  const fix: string[] = [];
  // Column names become Avro field names, which cannot hold other characters: rename on the source.
  const renames = new Map<string, string>();
  const taken = new Set(f.columns.map((c) => c.name));
  for (const col of published.filter((c) => !isAvroName(c))) {
    let to = col.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=[0-9]|$)/, '_');
    while (taken.has(to)) to += '_';
    taken.add(to);
    renames.set(col, to);
    fix.push(`ALTER TABLE ${sqlTable(f)} RENAME COLUMN ${sqlIdent(col)} TO ${sqlIdent(to)};`);
  }
  if (renames.size > 0) reasons.push(`has column${renames.size === 1 ? '' : 's'} ${[...renames.keys()].map(show).join(', ')} that ${renames.size === 1 ? 'is not a valid Avro field name' : 'are not valid Avro field names'} ([A-Za-z_][A-Za-z0-9_]*)`);
  if (f.primaryKey.length > 0) {
    const identityOk = f.replicaIdentity === 'd' || f.replicaIdentity === 'f' || (f.replicaIdentity === 'i' && sameColumns(f.identityIndex, f.primaryKey));
    if (!identityOk) {
      reasons.push(f.replicaIdentity === 'n' ? 'has REPLICA IDENTITY NOTHING: updates and deletes would fail on the source once it is published' : `has REPLICA IDENTITY USING INDEX on (${f.identityIndex.join(', ')}), not the primary key: deletes would not carry the key`);
      fix.push(`ALTER TABLE ${sqlTable(f)} REPLICA IDENTITY DEFAULT;`);
    }
  } else {
    const decided = decideKey('init', shown, sourceKey, { columns: f.columns.map((c) => c.name), primaryKey: f.primaryKey, replicaIdentity: f.replicaIdentity });
    if (!(decided.ok && candidate)) {
      reasons.push(`has no primary key${candidate ? '' : ' and no unique index on NOT NULL columns'}`);
      if (f.replicaIdentity !== 'f') fix.push(`ALTER TABLE ${sqlTable(f)} REPLICA IDENTITY FULL;`);
    }
  }
  const key = sourceKey.map((k) => renames.get(k) ?? k);
  return reasons.length === 0 ? out(true, false, undefined, [], key) : out(false, true, `${shown} ${reasons.join('; and ')}`, fix, key);
}

const sameColumns = (a: string[], b: string[]) => a.length === b.length && a.every((c) => b.includes(c));

export interface InitInput {
  source: PgUrl;
  /** Missing: the source's server, database `<source database>_target`. */
  target?: PgUrl;
  pipeline: string;
  tables: TableFacts[];
  /** Written into the header. */
  createdAt: string;
  /** The file's name, for the commands in the header. */
  file: string;
}

export interface InitResult {
  text: string;
  plans: TablePlan[];
  /** Environment variables the file needs (passwords). */
  env: string[];
}

/** `shop-db` → `shop-db`; `Shop_DB 2` → `shop-db-2`: lower-case letters, digits and `-`, at most 54 (the slot name adds `syncline_`). */
export function pipelineName(database: string): string {
  const n = database.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 54).replace(/-+$/, '');
  return n || 'sync';
}

export function renderConfig(input: InitInput): InitResult {
  const plans = input.tables.map(planTable);
  const env: string[] = [];
  const pipeline = input.pipeline;
  const slot = `syncline_${pipeline.replace(/-/g, '_')}`;
  const sourcePassword = input.source.password !== undefined ? 'SYNCLINE_SOURCE_PASSWORD' : undefined;
  const target = input.target ?? { ...input.source, database: `${input.source.database}_target` };
  const targetPassword = input.target ? (input.target.password !== undefined ? 'SYNCLINE_TARGET_PASSWORD' : undefined) : sourcePassword;
  for (const v of [sourcePassword, targetPassword]) if (v && !env.includes(v)) env.push(v);

  const L: string[] = [];
  L.push(
    `# syncline config written by \`syncline init\` from ${showUrl(input.source)} at ${input.createdAt}:`,
    '# tables, keys and column types as the catalog showed them then. Every option: docs/config.md.',
    '#',
    '# Next:',
    `#   npx syncline config validate ${shellWord(input.file)}     # this file, without connecting to anything`,
    `#   npx syncline doctor --config ${shellWord(input.file)}     # every prerequisite, with the fix of each that fails`,
    `#   npx syncline start --config ${shellWord(input.file)}`,
  );
  if (env.length > 0) L.push('#', `# No password is written here: set ${env.join(' and ')} in the environment.`);
  L.push(
    '',
    'version: 1',
    '',
    '# Topics: <topicPrefix>.cdc.<schema>.<table> (changes), <topicPrefix>.dlq.<pipeline> (dead letters).',
    'topicPrefix: ${SYNCLINE_TOPIC_PREFIX:-syncline}',
    '',
    'kafka:',
    '  brokers: ["${SYNCLINE_KAFKA_BROKERS:-127.0.0.1:9092}"]',
    '  replicationFactor: 1     # 1 suits a single broker; use 3 in production',
    'schemaRegistry:',
    '  url: ${SYNCLINE_SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}',
    'redis:',
    '  url: ${SYNCLINE_REDIS_URL:-redis://127.0.0.1:6379}   # per-key version state',
    '',
    'pipelines:',
    `  ${pipeline}:`,
    '    source:',
    '      type: postgres',
    ...connection(input.source, sourcePassword),
    '      # The replication slot and the publication are created at the first start when missing',
    '      # (the publication needs the tables\' owner or a superuser; `syncline doctor` says what to run).',
    `      slot: ${slot}`,
    `      publication: ${slot}`,
    '      snapshot: initial      # copy the existing rows once, then stream changes',
    '    target:',
    '      type: postgres',
    ...(input.target ? [] : ['      # The source\'s server, database <source database>_target: change it to your target.']),
    ...connection(target, targetPassword),
    '    # The target is written by syncline only: the source\'s version of a row always wins. For a',
    '    # target that is edited too, see latest-timestamp, manual and custom in docs/config.md.',
    '    conflict:',
    '      strategy: source-wins',
    '    tables:',
  );
  for (const p of plans.filter((x) => x.included)) {
    L.push(...columnComment(p.facts, '      # '));
    L.push(`      - source: ${yamlValue(p.name!)}`);
    L.push(`        key: [${p.key.map(yamlValue).join(', ')}]   # ${p.keyFrom}`);
  }
  const excluded = plans.filter((x) => !x.included);
  if (excluded.length > 0) {
    L.push('', '      # NOT INCLUDED: these tables cannot be captured as they are.');
      for (const p of excluded) {
      L.push('      #', `      # ${p.reason}.`);
      if (p.addable) {
        if (p.fix.length > 0) L.push('      # Run on the source:', ...p.fix.map((sql) => `      #   ${sql}`), '      # then add it here (its columns and their types are listed):');
        else L.push('      # Its REPLICA IDENTITY is already FULL: add it here with the columns that identify a row:');
        L.push(...columnComment(p.facts, '      #   '));
        L.push(`      # - source: ${yamlValue(p.name!)}`);
        L.push(`      #   key: [${p.key.map(yamlValue).join(', ')}]   # ${p.keyFrom}`);
      } else L.push(...columnComment(p.facts, '      #   '));
    }
  }
  return { text: `${L.join('\n')}\n`, plans, env };
}

function connection(c: PgUrl, passwordVar: string | undefined): string[] {
  return [
    '      connection:',
    `        host: ${yamlValue(c.host)}`,
    `        port: ${c.port}`,
    `        database: ${yamlValue(c.database)}`,
    `        user: ${yamlValue(c.user)}`,
    ...(passwordVar ? [`        password: \${${passwordVar}}`] : []),
    ...(c.ssl ? ['        ssl: true'] : []),
    ...(c.ssl && !c.sslVerify ? ['        sslVerify: false   # sslmode=require: encrypted, the certificate not verified'] : []),
  ];
}

/** `# public.users: id bigint NOT NULL, email character varying(200), …`, wrapped at about 100 characters. */
function columnComment(f: TableFacts, prefix: string): string[] {
  const cols = f.columns.map((c) => `${show(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}${c.generated ? ' GENERATED' : ''}`);
  const lines: string[] = [];
  let cur = `${prefix}${show(f.schema)}.${show(f.table)}:`;
  for (const [i, col] of cols.entries()) {
    const piece = ` ${col}${i < cols.length - 1 ? ',' : ''}`;
    if (cur.length + piece.length > 100 && !cur.endsWith(':')) {
      lines.push(cur);
      cur = `${prefix} `;
    }
    cur += piece;
  }
  lines.push(cur);
  return lines;
}
