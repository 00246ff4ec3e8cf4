/**
 * Names end to end on the real stack: a schema and tables whose names hold spaces, dots, double
 * quotes, mixed case and non-ASCII letters, written quoted in the config, captured (publication,
 * pgoutput relations), carried through Kafka topics and registry subjects (escaped names), written to
 * an empty target (autoCreate of the schema and tables, renamed to other awkward names) and found by
 * their canonical names in Redis keys, dead-letter headers and `--table` filters; a pipeline name with
 * _ and -, a slot and a publication with - (the slot created as PostgreSQL allows: - as _).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { KafkaClient, topics } from '../src/core/kafka.js';
import { rootLogger } from '../src/core/log.js';
import { DlqStore } from '../src/dlq/store.js';
import { checksum, readTopic, sql, startRuntime, testEnv, waitFor } from './helpers.js';

const SCHEMA = 'Quoted" . Schemä';
const TABLE = 'Mixed Case.Täble "1"';
const OTHER = 'Ünïcode tâble';
const TARGET_SCHEMA = 'Ziel Schema';
const TARGET = 'ü.b';
const q = (s: string) => '"' + s.replace(/"/g, '""') + '"';

test('awkward quoted names converge end to end; pipeline, slot and publication names with _ and -', async (t) => {
  const P = 'odd_names-1';
  const env = await testEnv([
    {
      name: P,
      slot: '{prefix}-odd-slot_1',
      publication: '{prefix}-odd-pub',
      tables: [
        // As a user writes them: quoted parts, quotes doubled.
        { source: `${q(SCHEMA)}.${q(TABLE)}`, target: `${q(TARGET_SCHEMA)}.${q(TARGET)}`, validate: { fields: { Name: { maxLength: 20 } } } },
        { source: `"public".${q(OTHER)}` },
      ],
    },
  ]);
  t.after(() => env.cleanup());
  const config = env.config;
  const source = config.pipelines[P]!.source as { slot: string; publication: string };
  assert.equal(source.slot, `${env.prefix}_odd_slot_1`);
  assert.equal(source.publication, `${env.prefix}-odd-pub`);
  assert.deepEqual(config.pipelines[P]!.tables.map((x) => [x.source, x.target]), [
    ['"Quoted"" . Schemä"."Mixed Case.Täble ""1"""', '"Ziel Schema"."ü.b"'],
    ['public."Ünïcode tâble"', undefined],
  ]);

  await sql(env.sourceDb, `create schema ${q(SCHEMA)};
    create table ${q(SCHEMA)}.${q(TABLE)} (id int primary key, "Name" text, updated_at timestamptz not null default now());
    create table public.${q(OTHER)} (id int primary key, "Wert" numeric(8,3), updated_at timestamptz not null default now())`);
  await sql(env.sourceDb, `insert into ${q(SCHEMA)}.${q(TABLE)} (id, "Name") select g, 'name ' || g from generate_series(1, 10) g`);
  await sql(env.sourceDb, `insert into public.${q(OTHER)} (id, "Wert") select g, g / 7.0 from generate_series(1, 10) g`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  await waitFor('the capture streams', async () => (h.capture?.stats.confirmed ?? '') !== '');
  // Streaming: inserts, updates, a delete, and one row the validation rule refuses.
  await sql(env.sourceDb, `insert into ${q(SCHEMA)}.${q(TABLE)} (id, "Name") values (11, 'eleven'), (12, 'a name far too long for the rule')`);
  await sql(env.sourceDb, `update ${q(SCHEMA)}.${q(TABLE)} set "Name" = 'changed' where id = 1; delete from ${q(SCHEMA)}.${q(TABLE)} where id = 2`);
  await sql(env.sourceDb, `update public.${q(OTHER)} set "Wert" = 42 where id = 3`);

  const srcA = `${q(SCHEMA)}.${q(TABLE)}`;
  const dstA = `${q(TARGET_SCHEMA)}.${q(TARGET)}`;
  const otherT = `public.${q(OTHER)}`;
  await waitFor('both tables converged', async () => {
    const [a, b, c, d] = await Promise.all([
      checksum(env.sourceDb, `(select * from ${srcA} where id <> 12)`, 'id'),
      checksum(env.targetDb, dstA, 'id').catch(() => null),
      checksum(env.sourceDb, otherT, 'id'),
      checksum(env.targetDb, otherT, 'id').catch(() => null),
    ]);
    return b !== null && d !== null && a.md5 === b.md5 && a.count === 10 && c.md5 === d.md5 && c.count === 10;
  }, 120000);
  // The replication slot as PostgreSQL names it, the publication as written.
  assert.equal((await sql('postgres', `select count(*)::int as n from pg_replication_slots where slot_name = $1`, [`${env.prefix}_odd_slot_1`])).rows[0].n, 1);
  assert.deepEqual((await sql(env.sourceDb, `select schemaname, tablename from pg_publication_tables where pubname = $1 order by 1, 2`, [`${env.prefix}-odd-pub`])).rows, [
    { schemaname: SCHEMA, tablename: TABLE },
    { schemaname: 'public', tablename: OTHER },
  ]);

  // Topics (escaped, injective) and registry subjects.
  const topic = topics.cdc(env.prefix, SCHEMA, TABLE);
  assert.equal(topic, `${env.prefix}.cdc.Quoted-22-20-2e-20Schem-c3-a4.Mixed-20Case-2eT-c3-a4ble-20-221-22`);
  const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const names = (await admin.listTopics()).filter((n) => n.startsWith(`${env.prefix}.`)).sort();
  await admin.disconnect();
  assert.ok(names.includes(topic), names.join(', '));
  assert.ok(names.includes(topics.cdc(env.prefix, 'public', OTHER)));
  assert.ok(names.includes(`${env.prefix}.dlq.${P}`));
  // One at a time: the registry's subject list stops at 1,000 names (a shared registry holds more).
  const registered = async (subject: string) => (await fetch(`${env.config.schemaRegistry.url}/subjects/${encodeURIComponent(subject)}/versions`)).status === 200;
  assert.ok((await registered(`${topic}-key`)) && (await registered(`${topic}-value`)), 'registry subjects of the escaped topic');

  // The invalid row: a dead letter whose table header is the canonical target name, found by --table filters.
  const letters = await readTopic(topics.dlq(env.prefix, P));
  assert.equal(letters.length, 1);
  assert.equal(letters[0]!.headers['syncline.table'], '"Ziel Schema"."ü.b"');
  assert.equal(letters[0]!.headers['syncline.original.topic'], topic);
  const client = new KafkaClient(env.config.kafka, rootLogger.child({ stage: 'kafka' }));
  try {
    const store = await new DlqStore(client, env.prefix, P).load();
    for (const filter of ['"Ziel Schema"."ü.b"', '"ü.b"']) assert.equal(store.list({ table: filter }).length, 1, filter);
    // Not a valid schema.table (ü would need quotes): taken as the table's own name.
    assert.equal(store.list({ table: 'ü.b' }).length, 1);
    assert.equal(store.list({ table: 'public."ü.b"' }).length, 0, 'another schema');
  } finally {
    await client.close();
  }

  // Version state under the canonical target name (the pipeline's hash tag first).
  const redis = new Redis(env.config.redis.url);
  try {
    assert.equal(await redis.exists(`${env.prefix}:{${P}}:v:"Ziel Schema"."ü.b":[1]`), 1);
    assert.equal(await redis.exists(`${env.prefix}:{${P}}:v:public."Ünïcode tâble":[3]`), 1);
  } finally {
    redis.disconnect();
  }
  assert.equal(h.applier!.stats.deadLettered, 0);
  await rt.stop();
});
