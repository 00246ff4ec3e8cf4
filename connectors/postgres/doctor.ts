/**
 * `syncline doctor` for PostgreSQL sources and targets: what a pipeline needs of its source server
 * (wal_level, free replication slots and walsenders, the REPLICATION right, SELECT on the tables,
 * a publication covering them, a replica identity that carries the key, a slot that is not left
 * inactive holding WAL) and of its target (the tables, their key constraint, the rights syncline
 * writes with, the columns). The facts come from ./introspect.ts; the findings are decided by the
 * pure functions here, each failure with the exact SQL or setting that fixes it.
 */
import { parseTableName } from '../../src/core/names.js';
import { decideKey } from '../../src/capture/table-key.js';
import { isAvroName } from '../../src/core/avro.js';
import { bytes, fail, pass, type Finding, type TargetDemand } from '../../src/observe/findings.js';
import { sqlIdent, sqlTable, type PublicationFacts, type RoleFacts, type ServerFacts, type TableFacts, type TableName } from './introspect.js';

/** What one pipeline asks of its source. */
export interface SourceDemand {
  pipeline: string;
  slot: string;
  publication: string;
  tables: { source: string; key?: string[] }[];
  /** Sync mode (src/sync/): scheduled and manual pipelines read the slot only during runs. */
  mode?: 'realtime' | 'scheduled' | 'manual';
}

export interface SourceFacts {
  server: ServerFacts;
  role: RoleFacts;
  publication: PublicationFacts | null;
  /** Facts of the configured tables that exist. */
  tables: TableFacts[];
}

const nameOf = (qualified: string): TableName => {
  const { schema, table } = parseTableName(qualified);
  return { schema, table };
};
const factsOf = (tables: TableFacts[], qualified: string) => {
  const n = nameOf(qualified);
  return tables.find((t) => t.schema === n.schema && t.table === n.table);
};
const list = (xs: string[]) => xs.join(', ');
const the = (n: number) => (n === 1 ? 'the table' : `the ${n} tables`);
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;
/** What two-way sync's target sessions call (connectors/postgres/sink.ts tagSession). */
export const ORIGIN_FUNCTIONS = ['pg_replication_origin_create(text)', 'pg_replication_origin_session_setup(text)', 'pg_replication_origin_oid(text)', 'pg_replication_origin_xact_setup(pg_lsn, timestamptz)'];
const RESTART = 'then restart PostgreSQL (a managed service sets it in its parameter group)';

/**
 * Server-wide limits, for every pipeline reading this server: a slot for each (the missing ones are
 * created at start), a walsender for each that is not streaming now.
 */
export function serverFindings(subject: string, server: ServerFacts, pipelines: SourceDemand[]): Finding[] {
  const out: Finding[] = [];
  if (server.walLevel === 'logical') out.push(pass(subject, 'wal_level', 'logical'));
  else out.push(fail(subject, 'wal_level', `is ${server.walLevel}; logical replication needs logical`, ['ALTER SYSTEM SET wal_level = logical;', RESTART]));

  const names = pipelines.map((p) => p.pipeline);
  const missing = pipelines.filter((p) => !server.slots.some((s) => s.name === p.slot));
  const used = server.slots.length;
  const slotDetail = `${used} of ${server.maxReplicationSlots} in use${missing.length > 0 ? `; ${list(missing.map((p) => p.pipeline))} need${missing.length === 1 ? 's' : ''} ${missing.length} more` : ''}`;
  if (used + missing.length <= server.maxReplicationSlots) out.push(pass(subject, 'max_replication_slots', slotDetail));
  else {
    const idle = server.slots.filter((s) => !s.active && !pipelines.some((p) => p.slot === s.name)).map((s) => s.name);
    out.push(
      fail(subject, 'max_replication_slots', `${slotDetail}: not enough`, [
        `ALTER SYSTEM SET max_replication_slots = ${used + missing.length};`,
        RESTART,
        ...(idle.length > 0 ? [`or drop the slots that are no longer used (inactive now: ${list(idle)}): SELECT pg_drop_replication_slot('<name>');`] : []),
      ]),
    );
  }

  const streaming = pipelines.filter((p) => server.slots.some((s) => s.name === p.slot && s.active));
  const needed = pipelines.length - streaming.length;
  const senderDetail = `${server.walSenders} of ${server.maxWalSenders} walsenders running${needed > 0 ? `; ${list(names.filter((n) => !streaming.some((s) => s.pipeline === n)))} need${needed === 1 ? 's' : ''} ${needed} more` : ''}`;
  if (server.walSenders + needed <= server.maxWalSenders) out.push(pass(subject, 'max_wal_senders', senderDetail));
  else out.push(fail(subject, 'max_wal_senders', `${senderDetail}: not enough`, [`ALTER SYSTEM SET max_wal_senders = ${server.walSenders + needed};`, RESTART]));
  return out;
}

/** What a pipeline needs of its source database, its role and its tables. */
export function sourceFindings(subject: string, d: SourceDemand, f: SourceFacts, conn: { user: string }): Finding[] {
  const out: Finding[] = [];
  const role = sqlIdent(f.role.name || conn.user);
  if (f.role.superuser || f.role.replication) out.push(pass(subject, 'REPLICATION right', `${f.role.name} has it${f.role.superuser ? ' (superuser)' : ''}`));
  else out.push(fail(subject, 'REPLICATION right', `${f.role.name} may not open a replication connection`, [`ALTER ROLE ${role} REPLICATION;`, '(a managed service: GRANT rds_replication TO … or its equivalent)']));

  const missing = d.tables.filter((t) => !factsOf(f.tables, t.source));
  if (missing.length === 0) out.push(pass(subject, 'tables', `${d.tables.length} found`));
  else {
    out.push(
      fail(subject, 'tables', `${list(missing.map((t) => t.source))} ${missing.length === 1 ? 'does' : 'do'} not exist in ${f.role.database} (or ${f.role.name} cannot see ${missing.length === 1 ? 'it' : 'them'})`, [
        `create ${missing.length === 1 ? 'it' : 'them'}, or remove ${missing.length === 1 ? 'it' : 'them'} from pipelines.${d.pipeline}.tables`,
      ]),
    );
  }
  const present = d.tables.map((t) => ({ t, facts: factsOf(f.tables, t.source) })).filter((x): x is { t: (typeof d.tables)[number]; facts: TableFacts } => x.facts !== undefined);

  const unreadable = present.filter((x) => !x.facts.privileges.select);
  if (unreadable.length === 0) out.push(pass(subject, 'SELECT right', `on ${present.length} table${present.length === 1 ? '' : 's'}`));
  else out.push(fail(subject, 'SELECT right', `${f.role.name} may not read ${list(unreadable.map((x) => x.t.source))} (the initial snapshot reads them)`, [`GRANT SELECT ON ${list(unreadable.map((x) => sqlTable(x.facts)))} TO ${role};`]));

  out.push(publicationFinding(subject, d, f, present.map((x) => x.facts), role));

  const renames = present.flatMap(({ facts }) =>
    facts.columns.filter((c) => !c.generated && !isAvroName(c.name)).map((c) => ({ facts, column: c.name })),
  );
  if (renames.length === 0) out.push(pass(subject, 'column names', `valid Avro field names in ${present.length} table${present.length === 1 ? '' : 's'}`));
  else {
    out.push(
      fail(subject, 'column names', `${list(renames.map((r) => `${r.facts.schema}.${r.facts.table}.${r.column}`))}: not valid Avro field names ([A-Za-z_][A-Za-z0-9_]*), so the table's changes cannot be written`, renames.map((r) => `ALTER TABLE ${sqlTable(r.facts)} RENAME COLUMN ${sqlIdent(r.column)} TO ${sqlIdent(r.column.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=[0-9]|$)/, '_'))};`)),
    );
  }
  for (const { t, facts } of present) out.push(identityFinding(subject, d.pipeline, t, facts, d.tables.indexOf(t)));

  out.push(slotFinding(subject, d, f));
  return out;
}

function publicationFinding(subject: string, d: SourceDemand, f: SourceFacts, tables: TableFacts[], role: string): Finding {
  const p = f.publication;
  const pub = sqlIdent(d.publication);
  const check = `publication ${d.publication}`;
  const all = list(tables.map((t) => sqlTable(t)));
  const mayCreate = f.role.superuser || (f.role.createInDatabase && tables.every((t) => t.owned));
  if (!p) {
    if (mayCreate) return pass(subject, check, `missing; created at the first start for ${the(tables.length)}`);
    return fail(subject, check, `missing, and ${f.role.name} may not create it (it must own the tables and may CREATE in ${f.role.database})`, [
      `CREATE PUBLICATION ${pub} FOR TABLE ${all};   -- as the tables' owner or a superuser`,
    ]);
  }
  const off = (['insert', 'update', 'delete', 'truncate'] as const).filter((k) => !p.publishes[k]);
  if (off.length > 0) {
    return fail(subject, check, `does not publish ${list(off)}: those changes would never reach the target`, [`ALTER PUBLICATION ${pub} SET (publish = 'insert, update, delete, truncate');`]);
  }
  if (p.allTables) return pass(subject, check, 'exists, FOR ALL TABLES');
  const uncovered = tables.filter((t) => !p.tables.some((c) => c.schema === t.schema && c.table === t.table));
  if (uncovered.length === 0) return pass(subject, check, `exists, covers ${the(tables.length)}`);
  const mayAdd = f.role.superuser || (p.owned && uncovered.every((t) => t.owned));
  const names = list(uncovered.map((t) => `${t.schema}.${t.table}`));
  if (mayAdd) return pass(subject, check, `exists; ${names} added at the first start`);
  return fail(subject, check, `does not cover ${names}, and ${f.role.name} may not add ${uncovered.length === 1 ? 'it' : 'them'} (it must own the publication and the tables)`, [
    `ALTER PUBLICATION ${pub} ADD TABLE ${list(uncovered.map((t) => sqlTable(t)))};   -- as their owner or a superuser`,
  ]);
}

/** The key the table is read with, and whether its replica identity carries it in updates and deletes. */
function identityFinding(subject: string, pipeline: string, t: { source: string; key?: string[] }, f: TableFacts, index: number): Finding {
  const check = `replica identity of ${t.source}`;
  const alter = (to: string) => `ALTER TABLE ${sqlTable(f)} REPLICA IDENTITY ${to};`;
  const decided = decideKey(pipeline, t.source, t.key, { columns: f.columns.map((c) => c.name), primaryKey: f.primaryKey, replicaIdentity: f.replicaIdentity });
  if (!decided.ok) {
    if (decided.code === 'SOURCE_KEY_UNKNOWN') return fail(subject, check, decided.message.replace(`pipeline ${pipeline}: `, ''), [`fix pipelines.${pipeline}.tables[${index}].key (columns: ${list(f.columns.map((c) => c.name))})`]);
    if (decided.code === 'SOURCE_KEY_IDENTITY') return fail(subject, check, `key (${list(t.key!)}) is not the primary key, and REPLICA IDENTITY is not FULL: deletes and key updates would not carry it`, [alter('FULL')]);
    const candidate = [...f.uniqueKeys].sort((a, b) => a.columns.length - b.columns.length)[0]?.columns ?? f.columns.filter((c) => !c.generated).map((c) => c.name);
    return fail(subject, check, 'no primary key and no key configured', [
      ...(f.replicaIdentity === 'f' ? [] : [alter('FULL')]),
      `and in the config, pipelines.${pipeline}.tables[${index}]: key: [${list(candidate)}]${f.uniqueKeys.length > 0 ? '' : '   (the columns that identify a row)'}`,
    ]);
  }
  if (f.replicaIdentity === 'n') return fail(subject, check, 'NOTHING: once published, every UPDATE and DELETE of the table fails on the source', [alter(f.primaryKey.length > 0 ? 'DEFAULT' : 'FULL')]);
  if (f.replicaIdentity === 'i' && !(decided.key.length === f.identityIndex.length && decided.key.every((c) => f.identityIndex.includes(c)))) {
    return fail(subject, check, `USING INDEX on (${list(f.identityIndex)}), not the key (${list(decided.key)}): deletes would not carry the key`, [alter(f.primaryKey.length > 0 && decided.key === f.primaryKey ? 'DEFAULT' : 'FULL')]);
  }
  const how = f.replicaIdentity === 'f' ? 'FULL' : f.replicaIdentity === 'i' ? 'the key\'s index' : 'DEFAULT (primary key)';
  return pass(subject, check, `${how}; key (${list(decided.key)})`);
}

function slotFinding(subject: string, d: SourceDemand, f: SourceFacts): Finding {
  const check = `slot ${d.slot}`;
  const s = f.server.slots.find((x) => x.name === d.slot);
  if (!s) return pass(subject, check, 'missing; created at the first start (with a snapshot of the tables)');
  const drop = `SELECT pg_drop_replication_slot(${literal(d.slot)});   -- the next start creates it again and snapshots the tables`;
  if (s.type !== 'logical' || s.plugin !== 'pgoutput') return fail(subject, check, `exists but is a ${s.type} slot${s.plugin ? ` of plugin ${s.plugin}` : ''}; syncline needs a logical pgoutput slot`, [drop]);
  if (s.database !== f.role.database) return fail(subject, check, `exists in database ${s.database}, not ${f.role.database}`, [`${drop.split(';')[0]}; (in ${s.database}) or choose another slot name`]);
  if (s.walStatus === 'lost') return fail(subject, check, 'has lost WAL it still needed (wal_status lost): the changes it missed cannot be read any more', [drop]);
  const held = s.retainedBytes ?? 0;
  const shown = `${bytes(held)} (${held} bytes) of WAL`;
  if (s.active) return pass(subject, check, `active (pid ${s.activePid ?? '?'}), holding ${shown}`);
  if (d.mode === 'scheduled' || d.mode === 'manual') return pass(subject, check, `inactive between ${d.mode} runs, holding ${shown} until the next run reads it`);
  if (held >= f.server.walSegmentBytes) {
    return fail(subject, check, `inactive, holding ${shown}: the source keeps it all until the slot is read`, [
      `start the pipeline (npx syncline start --pipeline ${d.pipeline}) so it catches up`,
      `or, if the pipeline is retired: ${drop.split('   --')[0]}`,
    ]);
  }
  return pass(subject, check, `inactive, holding ${shown} (less than one WAL segment)`);
}

export interface TargetFacts {
  role: RoleFacts;
  /** Facts of the target tables that exist. */
  tables: TableFacts[];
  /** Two-way pipelines: may the role use replication origins. */
  origins?: boolean;
  /** Schemas (of missing tables) the role may create tables in (autoCreate). */
  creatable?: Set<string>;
}

export function targetFindings(subject: string, demands: TargetDemand[], f: TargetFacts, opts: { autoEvolve: boolean; autoCreate?: boolean }): Finding[] {
  const out: Finding[] = [];
  const role = sqlIdent(f.role.name);
  for (const d of demands) {
    const t = factsOf(f.tables, d.table);
    const check = `table ${d.table}`;
    const key = d.key.map(sqlIdent);
    if (!t) {
      const n = nameOf(d.table);
      const cols = d.columns.map((c) => `${sqlIdent(c.name)} ${c.pgType}${c.notNull ? ' NOT NULL' : ''}`);
      const create = cols.length > 0 && key.length > 0 ? `CREATE TABLE ${sqlTable(n)} (${list(cols)}, PRIMARY KEY (${list(key)}));` : `create it with the columns of ${d.source} and a primary key on its key`;
      if (opts.autoCreate && f.creatable?.has(n.schema)) out.push(pass(subject, check, `missing; created at the first change (autoCreate)`));
      else if (opts.autoCreate) out.push(fail(subject, check, `does not exist in ${f.role.database}, and ${f.role.name} may not create it (autoCreate needs CREATE on schema ${n.schema})`, [`GRANT CREATE ON SCHEMA ${sqlIdent(n.schema)} TO ${role};   -- or create it:`, create]));
      else out.push(fail(subject, check, `does not exist in ${f.role.database}`, [create]));
      continue;
    }
    const problems: string[] = [];
    const fix: string[] = [];
    const p = t.privileges;
    const lacking = (['select', 'insert', 'update', 'delete', 'truncate'] as const).filter((k) => !p[k]);
    if (lacking.length > 0) {
      problems.push(`${f.role.name} lacks ${list(lacking.map((k) => k.toUpperCase()))}`);
      fix.push(`GRANT ${list(lacking.map((k) => k.toUpperCase()))} ON ${sqlTable(t)} TO ${role};`);
    }
    const keySet = new Set(d.key);
    const unique = [t.primaryKey, ...t.uniqueKeys.map((u) => u.columns)].some((cols) => cols.length > 0 && cols.length === keySet.size && cols.every((c) => keySet.has(c)));
    const missingKey = d.key.filter((k) => !t.columns.some((c) => c.name === k));
    const absent = d.columns.filter((c) => !t.columns.some((x) => x.name === c.name));
    if (absent.length > 0 && !(opts.autoEvolve && t.owned)) {
      problems.push(`has no column ${list(absent.map((c) => c.name))}${opts.autoEvolve ? ` and ${f.role.name} may not add ${absent.length === 1 ? 'it' : 'them'} (autoEvolve needs the table's owner)` : ' (autoEvolve is off)'}`);
      fix.push(`ALTER TABLE ${sqlTable(t)} ${list(absent.map((c) => `ADD COLUMN ${sqlIdent(c.name)} ${c.pgType}`))};`);
    }
    if (!unique && missingKey.length === 0 && d.key.length > 0) { // no key known: the source could not be read
      problems.push(`has no primary key or unique index on the key (${list(d.key)}): upserts need one`);
      fix.push(t.primaryKey.length === 0 ? `ALTER TABLE ${sqlTable(t)} ADD PRIMARY KEY (${list(key)});` : `CREATE UNIQUE INDEX ON ${sqlTable(t)} (${list(key)});`);
    }
    if (problems.length > 0) out.push(fail(subject, check, problems.join('; '), fix));
    else out.push(pass(subject, check, `exists, keyed on (${list(d.key)}), writable${absent.length > 0 ? `; columns ${list(absent.map((c) => c.name))} added at the first change (autoEvolve)` : ''}`));
  }
  if (f.origins !== undefined) {
    if (f.origins) out.push(pass(subject, 'replication origins', `${f.role.name} may use them (two-way sync)`));
    else {
      out.push(
        fail(subject, 'replication origins', `${f.role.name} may not use replication origins: two-way sync writes with one so the peer skips its changes`, [
          `GRANT EXECUTE ON FUNCTION ${ORIGIN_FUNCTIONS.join(', ')} TO ${role};`,
        ]),
      );
    }
  }
  return out;
}
