/**
 * `syncline init --source postgres://… [--target postgres://…] [--tables a,b] [--pipeline NAME] [--out FILE]`:
 * reads the source's catalog and writes a commented config for one pipeline (src/cli/init-config.ts
 * says what it holds). The file is checked with the same loader `syncline config validate` uses
 * before it is written; an existing --out file is kept unless --force. Without --out the config
 * goes to stdout. The summary (what was left out and why, the variables to set) goes to stderr.
 * Returns the exit code: 0 written, 1 nothing to write (every table needs a fix first, or a table
 * asked for does not exist).
 */
import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import '../../connectors/index.js';
import { describeTables, type TableName } from '../../connectors/postgres/introspect.js';
import { ConfigError, parseConfig } from '../core/config/load.js';
import { errorMessage, fatal } from '../core/errors.js';
import { PgProbe } from '../../connectors/postgres/probe.js';
import { parsePgUrl, parseTableList, pipelineName, renderConfig, showUrl } from './init-config.js';

export interface InitOptions {
  source: string;
  target?: string;
  tables?: string;
  pipeline?: string;
  out?: string;
  force?: boolean;
  /** Where the config goes without --out, and the summary (tests pass their own). */
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

export async function init(opts: InitOptions): Promise<number> {
  const stdout = opts.stdout ?? ((t: string) => process.stdout.write(t));
  const stderr = opts.stderr ?? ((t: string) => process.stderr.write(t));
  const source = parsePgUrl(opts.source, '--source');
  const target = opts.target !== undefined ? parsePgUrl(opts.target, '--target') : undefined;
  if (target && target.host === source.host && target.port === source.port && target.database === source.database) {
    throw fatal('INIT_ARGUMENT', `--target is the source database (${showUrl(source)}): the tables would be written onto themselves`);
  }
  const pipeline = opts.pipeline ?? pipelineName(source.database);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(pipeline)) throw fatal('INIT_ARGUMENT', `--pipeline '${pipeline}': lower-case letters, digits and - only`);
  if (opts.out && existsSync(opts.out) && !opts.force) throw fatal('INIT_ARGUMENT', `${opts.out} exists: choose another --out, or --force to replace it`);
  const asked: TableName[] | 'all' = opts.tables !== undefined ? parseTableList(opts.tables) : 'all';

  const probe = new PgProbe({ host: source.host, port: source.port, database: source.database, user: source.user, password: source.password, ssl: source.ssl, sslVerify: source.sslVerify }, 30_000);
  let facts;
  try {
    facts = await describeTables((text, params) => probe.query(text, params), asked);
  } catch (err) {
    throw fatal('INIT_SOURCE', `--source ${showUrl(source)}: ${errorMessage(err)}`);
  } finally {
    await probe.close();
  }
  if (asked !== 'all') {
    const missing = asked.filter((a) => !facts.some((f) => f.schema === a.schema && f.table === a.table));
    if (missing.length > 0) {
      stderr(`syncline init: no table ${missing.map((m) => `${m.schema}.${m.table}`).join(', ')} in ${showUrl(source)} (or no right to see it)\n`);
      return 1;
    }
  }
  if (facts.length === 0) {
    stderr(`syncline init: ${showUrl(source)} has no tables outside the system schemas\n`);
    return 1;
  }

  const shownFile = opts.out ?? 'syncline.yaml';
  const result = renderConfig({ source, target, pipeline, tables: facts, createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), file: shownFile });
  const text = result.text;
  const included = result.plans.filter((p) => p.included);
  const excluded = result.plans.filter((p) => !p.included);
  const left = excluded.map((p) => `  ${p.reason}${!p.addable ? '' : `\n    fix: ${p.fix.length > 0 ? `${p.fix.join(' ')} then add` : 'add'} it with key: [${p.key.join(', ')}]`}`);
  if (included.length === 0) {
    stderr(`syncline init: no table of ${showUrl(source)} can be captured as it is:\n${left.join('\n')}\n`);
    return 1;
  }
  // The same check as `syncline config validate` (the variables it names only need to exist).
  try {
    parseConfig(text, shownFile, { ...process.env, ...Object.fromEntries(result.env.map((v) => [v, process.env[v] ?? 'set'])) });
  } catch (err) {
    throw fatal('INIT_INTERNAL', `internal error: the config init wrote does not validate (please report it):\n${err instanceof ConfigError ? err.message : errorMessage(err)}`);
  }
  if (opts.out) writeFileSync(opts.out, text, { mode: 0o644 });
  else stdout(text);

  const lines = [`${opts.out ? `wrote ${opts.out}` : 'config written to stdout'}: pipeline ${pipeline}, ${included.length} table${included.length === 1 ? '' : 's'} (${included.map((p) => p.name).join(', ')})`];
  if (excluded.length > 0) lines.push(`not included (the comments at the end of the tables list say how to add them):`, ...left);
  if (result.env.length > 0) lines.push(`set ${result.env.join(' and ')} in the environment: the file refers to ${result.env.length === 1 ? 'it' : 'them'}, the password of the URL is not written`);
  lines.push(`next: npx syncline doctor --config ${shownFile}`);
  stderr(`${lines.join('\n')}\n`);
  return 0;
}

export function initCommand(program: Command): void {
  program
    .command('init')
    .description("read a PostgreSQL source's tables and write a commented config for one pipeline: keys, column types, the fix of each table that cannot be captured as it is; passwords as ${ENV} references")
    .requiredOption('--source <url>', 'source database: postgres://user[:password]@host[:port]/database[?sslmode=require]')
    .option('--target <url>', "target database, same form (default: the source's server, database <source database>_target)")
    .option('--tables <list>', 'only these tables: table (schema public) or schema.table, comma-separated; "quote" names holding . , or "')
    .option('-p, --pipeline <name>', 'pipeline name (default: from the source database name)')
    .option('-o, --out <file>', 'write the config here (default: stdout)')
    .option('--force', 'replace --out when it exists')
    .action(async (o: { source: string; target?: string; tables?: string; pipeline?: string; out?: string; force?: boolean }) => {
      process.exitCode = await init(o);
    });
}
