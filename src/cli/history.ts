/**
 * `syncline history show|asof` (ADR 0031): read the change history from its store (history.url, by
 * default audit.url); no running syncline needed.
 *  - show   a key's timeline, oldest first, with a field diff per step (values masked by the masking
 *           policy); --since/--until (ISO) bound it; --json prints the timeline as JSON
 *  - asof   the table as it was at --at: JSON lines (--out FILE, else stdout) or a new table of a
 *           PostgreSQL target's database (--into SCHEMA.TABLE). Refused (exit 1) when the history
 *           does not reach back that far.
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { createWriteStream } from 'node:fs';
import { writeAsofInto } from '../../connectors/postgres/history-into.js';
import type { PgSinkConfig } from '../../connectors/postgres/spec.js';
import { loadConfig } from '../core/config/load.js';
import { fatal } from '../core/errors.js';
import { maskPolicy } from '../security/masking/policy.js';
import { isoParam, timeline, type Step } from '../history/api.js';
import { openStore, requireHistory } from '../history/recorder.js';

const iso = (name: string, v: string | undefined) => {
  try {
    return isoParam(name, v);
  } catch (err) {
    throw fatal('USAGE', (err as Error).message);
  }
};

function stepLine(s: Step): string {
  const how = [s.decision, s.strategy, s.by ? `by ${s.by}` : ''].filter(Boolean).join(' ');
  const head = `${s.appliedAt}  ${s.op.padEnd(8)} ${how}  (position ${s.position}${s.commitAt ? `, committed ${s.commitAt}` : ''})`;
  const diff = s.diff.map((d) => `    ${d.field}: ${d.from === undefined ? '∅' : JSON.stringify(d.from)} → ${d.to === undefined ? '∅' : JSON.stringify(d.to)}`);
  return [head, ...(diff.length ? diff : ['    (no field changed)'])].join('\n');
}

/** The actions of `syncline history …` (their options: ./commands/history.ts, loaded without this module). */
export async function historyShow(o: { config: string; pipeline: string; table: string; key: string; since?: string; until?: string; json?: boolean }): Promise<void> {
  const config = loadConfig(o.config);
  const where = requireHistory(config, o.pipeline, o.table);
  const { store, release } = openStore(where.url, where.schema);
  try {
    const t = await timeline(store, { pipeline: o.pipeline, table: o.table, key: o.key, since: iso('--since', o.since), until: iso('--until', o.until) }, maskPolicy(config));
    if (o.json) process.stdout.write(JSON.stringify(t, null, 2) + '\n');
    else if (t.steps.length === 0) process.stderr.write(`no history of ${o.table} key ${t.key} in pipeline ${o.pipeline}${o.since || o.until ? ' in that interval' : ''}\n`);
    else process.stdout.write(`${o.pipeline} ${o.table} key ${t.key}: ${t.steps.length} steps\n` + t.steps.map(stepLine).join('\n') + '\n');
  } finally {
    await release();
  }
}

export async function historyAsof(o: { config: string; pipeline: string; table: string; at: string; out?: string; into?: string }): Promise<void> {
  const at = iso('--at', o.at);
  if (!at) throw fatal('USAGE', '--at needs an ISO time');
  if (o.out && o.into) throw fatal('USAGE', 'give --out or --into, not both');
  const config = loadConfig(o.config);
  const where = requireHistory(config, o.pipeline, o.table);
  const target = config.pipelines[o.pipeline]!.target as { type: string };
  if (o.into && target.type !== 'postgres') throw fatal('USAGE', `--into writes into a PostgreSQL target's database; pipeline ${o.pipeline}'s target is ${target.type}: use --out`);
  const { store, release } = openStore(where.url, where.schema);
  try {
    const r = await store.asof(o.pipeline, o.table, at);
    const rows = r.rows.map((x) => x.row);
    if (o.into) {
      await writeAsofInto(target as unknown as PgSinkConfig, o.table, o.into, rows);
      process.stderr.write(`${rows.length} rows of ${o.table} as of ${at.toISOString()} written to ${o.into}\n`);
    } else {
      const out = o.out ? createWriteStream(o.out) : process.stdout;
      for (const row of rows) out.write(JSON.stringify(row) + '\n');
      if (o.out) await new Promise<void>((res, rej) => (out as ReturnType<typeof createWriteStream>).end((e?: Error | null) => (e ? rej(e) : res())));
      process.stderr.write(`${rows.length} rows of ${o.table} as of ${at.toISOString()}${o.out ? ` written to ${o.out}` : ''}\n`);
    }
  } finally {
    await release();
  }
}
