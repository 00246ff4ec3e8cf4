/**
 * `syncline init --source URL [--target URL] [--tables a,b] [--pipeline NAME] [--out FILE]`:
 * reads the source's catalog and writes a commented config for one pipeline (src/cli/init-config.ts
 * says what it holds). The URL's scheme picks the connector (postgres://, mariadb://, … : each
 * connector's `init` hook, src/core/init-plan.ts). The file is checked with the same loader `syncline config validate` uses
 * before it is written; an existing --out file is kept unless --force. Without --out the config
 * goes to stdout. The summary (what was left out and why, the variables to set) goes to stderr.
 * Returns the exit code: 0 written, 1 nothing to write (every table needs a fix first, or a table
 * asked for does not exist).
 */
import { existsSync, writeFileSync } from 'node:fs';
import '../../connectors/index.js';
import { ConfigError, parseConfig } from '../core/config/load.js';
import { errorMessage, fatal } from '../core/errors.js';
import type { InitSource, InitTarget, TableName, TablePlan } from '../core/init-plan.js';
import { initSchemes, sinkForScheme, sourceForScheme } from '../core/registry.js';
import { parseTableList, pipelineName, renderConfig } from './init-config.js';

function schemeOf(url: string): string {
  return /^([A-Za-z][A-Za-z0-9+.-]*:)/.exec(url)?.[1]?.toLowerCase() ?? '';
}

function initSource(url: string): InitSource {
  const reg = sourceForScheme(schemeOf(url));
  if (!reg?.init) throw fatal('INIT_ARGUMENT', `--source: expected a URL of ${initSchemes('source').map((s) => `${s}//`).join(', ')}, got ${schemeOf(url) ? `${schemeOf(url)}//…` : `'${url.slice(0, 40)}'`}`);
  return reg.init;
}

function initTarget(url: string): InitTarget {
  const reg = sinkForScheme(schemeOf(url));
  if (!reg?.init) throw fatal('INIT_ARGUMENT', `--target: expected a URL of ${initSchemes('target').map((s) => `${s}//`).join(', ')}, got ${schemeOf(url) ? `${schemeOf(url)}//…` : `'${url.slice(0, 40)}'`}`);
  return reg.init;
}

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
  const hook = initSource(opts.source);
  const source = hook.parse(opts.source, '--source');
  const target = opts.target !== undefined ? initTarget(opts.target).parse(opts.target, '--target') : hook.defaultTarget(source);
  if (opts.target !== undefined && target.at.host === source.at.host && target.at.port === source.at.port && target.at.database === source.at.database) {
    throw fatal('INIT_ARGUMENT', `--target is the source database (${source.shown}): the tables would be written onto themselves`);
  }
  const pipeline = opts.pipeline ?? pipelineName(source.at.database);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(pipeline)) throw fatal('INIT_ARGUMENT', `--pipeline '${pipeline}': lower-case letters, digits and - only`);
  if (opts.out && existsSync(opts.out) && !opts.force) throw fatal('INIT_ARGUMENT', `${opts.out} exists: choose another --out, or --force to replace it`);
  const asked: TableName[] | 'all' = opts.tables !== undefined ? parseTableList(opts.tables, hook.defaultSchema(source)) : 'all';

  let plans: TablePlan[];
  try {
    plans = await hook.read(source, asked);
  } catch (err) {
    throw fatal('INIT_SOURCE', `--source ${source.shown}: ${errorMessage(err)}`);
  }
  if (asked !== 'all') {
    const missing = asked.filter((a) => !plans.some((f) => f.at.schema === a.schema && f.at.table === a.table));
    if (missing.length > 0) {
      stderr(`syncline init: no table ${missing.map((m) => `${m.schema}.${m.table}`).join(', ')} in ${source.shown} (or no right to see it)\n`);
      return 1;
    }
  }
  if (plans.length === 0) {
    stderr(`syncline init: ${source.shown} has no tables outside the system schemas\n`);
    return 1;
  }

  const shownFile = opts.out ?? 'syncline.yaml';
  const result = renderConfig({ source, target, targetIsDefault: opts.target === undefined, pipeline, plans, createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), file: shownFile });
  const text = result.text;
  const included = result.plans.filter((p) => p.included);
  const excluded = result.plans.filter((p) => !p.included);
  const left = excluded.map((p) => `  ${p.reason}${!p.addable ? '' : `\n    fix: ${p.fix.length > 0 ? `${p.fix.join(' ')} then add` : 'add'} it with key: [${p.key.join(', ')}]`}`);
  if (included.length === 0) {
    stderr(`syncline init: no table of ${source.shown} can be captured as it is:\n${left.join('\n')}\n`);
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
