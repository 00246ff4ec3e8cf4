/**
 * `syncline history show|asof` (ADR 0031): read the change history from its store (history.url, by
 * default audit.url); no running syncline needed.
 *  - show   a key's timeline, oldest first, with a field diff per step (values masked by the masking
 *           policy); --since/--until (ISO) bound it; --json prints the timeline as JSON
 *  - asof   the table as it was at --at: JSON lines (--out FILE, else stdout) or a new table of a
 *           PostgreSQL target's database (--into SCHEMA.TABLE). Refused (exit 1) when the history
 *           does not reach back that far.
 */
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
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

export function historyCommands(program: Command, defaultConfig: string): void {
  const cmd = program.command('history').description('the change history of the targets: a key\'s timeline, a table as it was (config history)');
  cmd
    .command('show')
    .description("a key's timeline with a field diff per step")
    .option('-c, --config <file>', 'config file', defaultConfig)
    .requiredOption('--pipeline <name>', 'pipeline')
    .requiredOption('--table <table>', 'target table (schema.table)')
    .requiredOption('--key <key>', 'the key: a value (42), a JSON array of the key values ([1,"a"]) or a JSON object ({"id":42})')
    .option('--since <iso>', 'from this instant')
    .option('--until <iso>', 'before this instant')
    .option('--json', 'the timeline as JSON')
    .action(async (o: { config: string; pipeline: string; table: string; key: string; since?: string; until?: string; json?: boolean }) => {
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
    });
  cmd
    .command('asof')
    .description('the target table as it was at an instant, rebuilt from the history')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .requiredOption('--pipeline <name>', 'pipeline')
    .requiredOption('--table <table>', 'target table (schema.table)')
    .requiredOption('--at <iso>', 'the instant (ISO time)')
    .option('-o, --out <file>', 'write the rows as JSON lines to this file (default: stdout)')
    .option('--into <schema.table>', "create this table in the PostgreSQL target's database, like the target table, with the rows")
    .action(async (o: { config: string; pipeline: string; table: string; at: string; out?: string; into?: string }) => {
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
    });
}
