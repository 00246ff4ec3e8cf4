/**
 * `syncline init` for PostgreSQL (the registrations' `init` hooks, src/core/init-plan.ts): a
 * postgres:// URL as libpq reads it, each table of the catalog proposed as it is or left out with
 * the exact fix (column renames to valid Avro names, the replica identity), and the config blocks
 * of a PostgreSQL source (slot, publication, snapshot) and target.
 */
import { fatal } from '../../src/core/errors.js';
import { decideKey } from '../../src/capture/table-key.js';
import { isAvroName } from '../../src/core/avro.js';
import { avroRenames, configTableName, connectionLines, keyCandidate, parseInitUrl, show, yamlValue, type InitEndpoint, type InitSource, type InitTarget, type TablePlan } from '../../src/core/init-plan.js';
import { describeTables, sqlIdent, sqlTable, type TableFacts } from './introspect.js';
import { PgProbe } from './probe.js';

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
  const { url: u, host } = parseInitUrl(text, what, ['postgres:', 'postgresql:'], 'postgres://user:password@host:port/database');
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
 * Include a table as it is, or leave it out with the exact fix: SQL to run on the source (column
 * renames to valid Avro names, the replica identity), then the entry to add with its key.
 */
export function planTable(f: TableFacts): TablePlan {
  const name = configTableName(f.schema, f.table);
  const shown = `${show(f.schema)}.${show(f.table)}`;
  const candidate = keyCandidate(f.uniqueKeys);
  // Generated columns are not published (PostgreSQL 15): neither keys nor schema fields.
  const published = f.columns.filter((c) => !c.generated).map((c) => c.name);
  const sourceKey = f.primaryKey.length > 0 ? f.primaryKey : candidate ? candidate.columns : published;
  const keyFrom = f.primaryKey.length > 0 ? 'primary key' : candidate ? `unique index ${show(candidate.index)}` : 'every column: keep the ones that identify a row';
  const columns = { table: `${show(f.schema)}.${show(f.table)}`, columns: f.columns.map((c) => `${show(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}${c.generated ? ' GENERATED' : ''}`) };
  const addNote = f.replicaIdentity === 'f' ? 'Its REPLICA IDENTITY is already FULL: add it here with the columns that identify a row:' : undefined;
  const out = (included: boolean, addable: boolean, reason: string | undefined, fix: string[], key = sourceKey): TablePlan => ({ at: { schema: f.schema, table: f.table }, name, key, keyFrom, included, addable, reason, fix, columns, ...(addNote ? { addNote } : {}) });
  if (name === null) return out(false, false, `the config's table pattern cannot name ${shown} yet (rename it, or capture a view of it under a plain name)`, []);
  if (f.kind === 'p') return out(false, false, `${shown} is partitioned: its changes are published under its partitions' names; list the partitions instead`, []);

  const reasons: string[] = [];
  const fix: string[] = [];
  // Column names become Avro field names, which cannot hold other characters: rename on the source.
  const renames = avroRenames(published, isAvroName, f.columns.map((c) => c.name));
  for (const [col, to] of renames) fix.push(`ALTER TABLE ${sqlTable(f)} RENAME COLUMN ${sqlIdent(col)} TO ${sqlIdent(to)};`);
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

type PgEndpoint = InitEndpoint & { url: PgUrl };

function endpoint(u: PgUrl, role: 'source' | 'target'): PgEndpoint {
  return {
    url: u,
    type: 'postgres',
    shown: showUrl(u),
    at: { host: u.host, port: u.port, database: u.database },
    password: u.password,
    lines: (passwordVar, pipeline) => {
      const slot = `syncline_${pipeline.replace(/-/g, '_')}`;
      return [
        '      type: postgres',
        ...connectionLines(u, passwordVar),
        ...(u.ssl && !u.sslVerify ? ['        sslVerify: false   # sslmode=require: encrypted, the certificate not verified'] : []),
        ...(role === 'source'
          ? [
              '      # The replication slot and the publication are created at the first start when missing',
              "      # (the publication needs the tables' owner or a superuser; `syncline doctor` says what to run).",
              `      slot: ${slot}`,
              `      publication: ${slot}`,
              '      snapshot: initial      # copy the existing rows once, then stream changes',
            ]
          : []),
      ];
    },
  };
}

export const pgInitSource: InitSource = {
  schemes: ['postgres:', 'postgresql:'],
  parse: (url, what) => endpoint(parsePgUrl(url, what), 'source'),
  defaultSchema: () => 'public',
  async read(e, asked) {
    const c = (e as PgEndpoint).url;
    const probe = new PgProbe({ host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, ssl: c.ssl, sslVerify: c.sslVerify }, 30_000);
    try {
      return (await describeTables((text, params) => probe.query(text, params), asked)).map(planTable);
    } finally {
      await probe.close();
    }
  },
  defaultTarget(e) {
    const c = (e as PgEndpoint).url;
    return endpoint({ ...c, database: `${c.database}_target` }, 'target');
  },
};

export const pgInitTarget: InitTarget = {
  schemes: ['postgres:', 'postgresql:'],
  parse: (url, what) => endpoint(parsePgUrl(url, what), 'target'),
};
