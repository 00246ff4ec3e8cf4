/**
 * `syncline dlq list|show|resolve|requeue|discard`: the dead-letter workflow from the command line,
 * run directly against Kafka, Redis and the targets (no running syncline needed); the same
 * operations as /api/dlq (src/dlq/service.ts).
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { readFileSync } from 'node:fs';
import { userInfo, hostname } from 'node:os';
import type { OptionValues } from 'commander';
import { loadConfig } from '../core/config/load.js';
import { stringifyTagged } from '../core/tagged-json.js';
import { entryJson } from '../dlq/api.js';
import { maskEntry } from '../security/masking/policy.js';
import { DlqError, DlqService, type ActionResult } from '../dlq/service.js';
import type { DlqEntry, DlqState } from '../dlq/store.js';
import { openClients } from './clients.js';

const who = () => {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return 'cli';
  }
};

async function withService<T>(configFile: string, fn: (s: DlqService) => Promise<T>): Promise<T> {
  const c = await openClients(loadConfig(configFile));
  const s = new DlqService(c);
  try {
    return await fn(s);
  } finally {
    await s.close();
    await c.close();
  }
}

const val = (v: unknown) => (v === null || v === undefined ? '∅' : typeof v === 'string' ? v : stringifyTagged(v));

function line(e: DlqEntry): string {
  const why = e.reason === 'parked' ? `behind ${e.parkedBehind}` : `${e.errorCode}: ${e.errorMessage}`.slice(0, 90);
  return [e.id, e.time.slice(0, 19) + 'Z', e.pipeline, e.reason, e.state, e.table ?? '-', e.key ?? '-', why].join('  ');
}

function details(e: DlqEntry): string {
  const out = [
    `id:         ${e.id}`,
    `pipeline:   ${e.pipeline}`,
    `kind:       ${e.kind}${e.reason !== e.kind ? ` (${e.reason})` : ''}`,
    `state:      ${e.state}`,
    `table/key:  ${e.table ?? '-'} ${e.key ?? ''}`,
    ...(e.column !== undefined ? [`column:     ${e.column}`] : []),
    `position:   ${e.position ?? '-'}`,
    `time:       ${e.time}`,
    `error:      ${e.errorCode}: ${e.errorMessage}`,
    `attempts:   ${e.attempts}`,
    `origin:     ${e.origin ? `${e.origin.topic}/${e.origin.partition}@${e.origin.offset}` : '-'}`,
  ];
  if (e.parkedBehind) out.push(`waits for:  ${e.parkedBehind}`);
  if (e.violations) out.push('violations:', ...e.violations.map((v) => `  ${JSON.stringify(v)}`));
  if (e.omitted?.length) out.push(`left out:   ${e.omitted.join(', ')} (the letter was larger than its topic takes${e.omitted.includes('value') ? '; the change is read at its origin offset when acted on' : ''})`);
  if (e.conflict) {
    const c = e.conflict;
    out.push(`conflict:   ${c.op} under ${c.strategy}`, '  field                 source                target                last synced');
    for (const d of c.diff) out.push(`  ${d.field.padEnd(20)}  ${val(d.source).padEnd(20)}  ${val(d.target).padEnd(20)}  ${val(d.lastSynced)}`);
  }
  for (const h of e.history) out.push(`history:    ${h.at} ${h.action} by ${h.by}${h.choice ? ` (${h.choice})` : ''}${h.note ? ` — ${h.note}` : ''}`);
  return out.join('\n');
}

/** An action's result as people may see it: its entry through the masking policy, like list and show. */
const masked = (r: ActionResult, s: DlqService): ActionResult => ({ ...r, entry: maskEntry(r.entry, s.masking) });

function printResult(r: ActionResult, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify({ ...r, entry: entryJson(r.entry) }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`${r.entry.id}: ${r.entry.state}; ${r.released} later change(s) of the key released${r.parkedBehind ? `; the key is parked again behind ${r.parkedBehind}` : ''}\n`);
}

async function run(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof DlqError) {
      process.stderr.write(`syncline dlq: ${err.message}\n`);
      process.exitCode = err.status === 404 ? 3 : err.status === 409 ? 4 : 1;
      return;
    }
    throw err;
  }
}

/** The actions of `syncline dlq …` (their options: ./commands/dlq.ts, loaded without this module). */
export async function dlqList(o: OptionValues): Promise<void> {
  await run(async () => {
    if (!['open', 'resolved', 'requeued', 'discarded', 'all'].includes(o.state)) throw new DlqError(400, `--state must be open, resolved, requeued, discarded or all`);
    for (const t of ['since', 'until'] as const) if (o[t] !== undefined && Number.isNaN(Date.parse(o[t]))) throw new DlqError(400, `--${t} must be an ISO time (got '${o[t]}')`);
    const iso = (v?: string) => (v === undefined ? undefined : new Date(v).toISOString());
    const list = await withService(o.config, async (s) => (await s.list({ pipeline: o.pipeline, kind: o.kind, table: o.table, key: o.key, state: o.state as DlqState, since: iso(o.since), until: iso(o.until), limit: o.limit })).map((e) => maskEntry(e, s.masking)));
    if (o.json) process.stdout.write(JSON.stringify(list.map((e) => entryJson(e)), null, 2) + '\n');
    else process.stdout.write(list.length === 0 ? 'no dead letters\n' : list.map(line).join('\n') + `\n${list.length} dead letter(s)\n`);
  });
}

export async function dlqShow(id: string, o: OptionValues): Promise<void> {
  await run(async () => {
    const e = await withService(o.config, async (s) => maskEntry(await s.show(id, o.pipeline), s.masking));
    process.stdout.write((o.json ? JSON.stringify(entryJson(e), null, 2) : details(e)) + '\n');
  });
}

export async function dlqResolve(id: string, o: OptionValues): Promise<void> {
  await run(async () => {
    const merged = o.mergedFile ? readFileSync(o.mergedFile, 'utf8') : o.merged;
    const r = await withService(o.config, async (s) => masked(await s.resolve(id, { choice: o.choice, merged, by: o.by ?? who(), note: o.note, pipeline: o.pipeline }), s));
    printResult(r, o.json);
  });
}

export async function dlqRequeueOrDiscard(name: 'requeue' | 'discard', id: string, o: OptionValues): Promise<void> {
  await run(async () => {
    const r = await withService(o.config, async (s) => masked(await (name === 'requeue' ? s.requeue(id, { by: o.by ?? who(), pipeline: o.pipeline }) : s.discard(id, { by: o.by ?? who(), note: o.note, pipeline: o.pipeline })), s));
    printResult(r, o.json);
  });
}
