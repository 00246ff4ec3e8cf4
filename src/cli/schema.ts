/**
 * `syncline schema pending|list|approve ID|reject ID`: breaking schema changes held for an operator
 * (src/capture/schema-admin.ts; the same as /api/schema/changes). Works against Kafka directly.
 *
 *   syncline schema pending            what waits (exit 0; --json for scripts)
 *   syncline schema list [--pipeline]  every change recorded, safe ones included
 *   syncline schema approve ID         the held table applies its changes with the new schema
 *   syncline schema reject ID          its changes under that schema are dead-lettered (SCHEMA_CHANGE_REJECTED), the table flows on
 */
import { audit } from '../security/audit/recorder.js';
import { userInfo, hostname } from 'node:os';
import '../../connectors/index.js';
import { loadConfig } from '../core/config/load.js';
import { KafkaClient } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { SchemaAdmin, changeLine } from '../capture/schema-admin.js';
import type { SchemaChange } from '../capture/schema-changes.js';

const who = () => {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return 'cli';
  }
};

async function withAdmin<T>(configFile: string, fn: (a: SchemaAdmin) => Promise<T>): Promise<T> {
  const config = loadConfig(configFile);
  const kafka = new KafkaClient(config.kafka, rootLogger.child({ stage: 'kafka' }));
  const auditing = audit.configure(config.audit, rootLogger.child({ stage: 'audit' })); // decisions are audited
  try {
    return await fn(new SchemaAdmin(kafka, config));
  } finally {
    await kafka.close();
    if (auditing) await audit.release();
  }
}

const print = (json: boolean | undefined, v: SchemaChange | SchemaChange[], empty: string) =>
  process.stdout.write((json ? JSON.stringify(v, null, 2) : (Array.isArray(v) ? v : [v]).map(changeLine).join('\n') || empty) + '\n');

/** The actions of `syncline schema …` (their options: ./commands/schema.ts, loaded without this module). */
export async function schemaPending(o: { config: string; pipeline?: string; json?: boolean }): Promise<void> {
  const list = await withAdmin(o.config, (a) => a.list({ pipeline: o.pipeline, status: 'pending' }));
  print(o.json, list, 'no pending schema changes');
}

export async function schemaList(o: { config: string; pipeline?: string; json?: boolean }): Promise<void> {
  print(o.json, await withAdmin(o.config, (a) => a.list({ pipeline: o.pipeline })), 'no schema changes');
}

export async function schemaDecide(status: 'approved' | 'rejected', id: string, o: { config: string; note?: string; json?: boolean }): Promise<void> {
  const c = await withAdmin(o.config, (a) => a.decide(id, status, who(), o.note));
  print(o.json, c, '');
  process.stderr.write(`schema change ${c.id} of ${c.table} ${status}; the pipeline's processor resumes the table\n`);
}
