/**
 * The config `syncline init` writes, from what the source connector proposed for each table
 * (src/core/init-plan.ts; connectors/<system>/init.ts read the catalogs): pure functions, no I/O,
 * knowing no system (src/cli/init.ts reads the catalog and writes the file).
 *
 * What the file holds: one pipeline; every table that can be captured as it is, with its key and a
 * comment listing its columns and their SQL types; every table that cannot, in comments, with the
 * exact fix (the SQL to run on the source, then the `key:` to add); the connections with every
 * password replaced by a `${ENV}` reference (the password of a URL never reaches the file). Every
 * value goes through yamlValue(), so no name can break the YAML or be read as a `${…}` reference.
 */
import { fatal } from '../core/errors.js';
import { configTableName, show, yamlValue, type InitEndpoint, type TableName, type TablePlan } from '../core/init-plan.js';
export { configTableName, show, yamlValue } from '../core/init-plan.js';

/**
 * `--tables a,schema.b,"Odd, Name"."T"`: a comma-separated list of `table` (schema `defaultSchema`) or
 * `schema.table`; names are taken as written (no case folding, as in the config); a name holding
 * `.`, `,` or `"` is written in double quotes with `""` for a quote.
 */
export function parseTableList(text: string, defaultSchema = 'public'): TableName[] {
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
    out.push(parts.length === 2 ? { schema: parts[0]!, table: parts[1]! } : { schema: defaultSchema, table: parts[0]! });
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

/** A file name as a shell word inside a comment. */
const shellWord = (s: string) => (/^[A-Za-z0-9_.\/-]+$/.test(s) ? s : /[\n\r]/.test(s) ? JSON.stringify(s) : `'${s.replace(/'/g, `'\\''`)}'`);

export interface InitInput {
  source: InitEndpoint;
  /** --target, or the source connector's default target. */
  target: InitEndpoint;
  /** No --target: the default (it shares the source's password variable). */
  targetIsDefault: boolean;
  pipeline: string;
  plans: TablePlan[];
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
  const plans = input.plans;
  const env: string[] = [];
  const pipeline = input.pipeline;
  const sourcePassword = input.source.password !== undefined ? 'SYNCLINE_SOURCE_PASSWORD' : undefined;
  const target = input.target;
  const targetPassword = !input.targetIsDefault ? (input.target.password !== undefined ? 'SYNCLINE_TARGET_PASSWORD' : undefined) : sourcePassword;
  for (const v of [sourcePassword, targetPassword]) if (v && !env.includes(v)) env.push(v);

  // The target's name of a table, when the target names it otherwise (null: not expressible: left to the user).
  const targetName = (p: TablePlan): string | null => {
    if (!target.targetTable) return null;
    const t = target.targetTable(p.at);
    const name = configTableName(t.schema, t.table);
    return name !== null && name !== p.name ? name : null;
  };
  const L: string[] = [];
  L.push(
    `# syncline config written by \`syncline init\` from ${input.source.shown} at ${input.createdAt}:`,
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
    ...input.source.lines(sourcePassword, pipeline),
    '    target:',
    ...(input.targetIsDefault ? ["      # The source's server, database <source database>_target: change it to your target."] : []),
    ...target.lines(targetPassword, pipeline),
    '    # The target is written by syncline only: the source\'s version of a row always wins. For a',
    '    # target that is edited too, see latest-timestamp, manual and custom in docs/config.md.',
    '    conflict:',
    '      strategy: source-wins',
    '    tables:',
  );
  for (const p of plans.filter((x) => x.included)) {
    L.push(...columnComment(p, '      # '));
    L.push(`      - source: ${yamlValue(p.name!)}`);
    const to = targetName(p);
    if (to) L.push(`        target: ${yamlValue(to)}`);
    L.push(`        key: [${p.key.map(yamlValue).join(', ')}]   # ${p.keyFrom}`);
  }
  const excluded = plans.filter((x) => !x.included);
  if (excluded.length > 0) {
    L.push('', '      # NOT INCLUDED: these tables cannot be captured as they are.');
      for (const p of excluded) {
      L.push('      #', `      # ${p.reason}.`);
      if (p.addable) {
        if (p.fix.length > 0) L.push('      # Run on the source:', ...p.fix.map((sql) => `      #   ${sql}`), '      # then add it here (its columns and their types are listed):');
        else L.push(`      # ${p.addNote ?? 'Add it here with the columns that identify a row:'}`);
        L.push(...columnComment(p, '      #   '));
        L.push(`      # - source: ${yamlValue(p.name!)}`);
        const to = targetName(p);
        if (to) L.push(`      #   target: ${yamlValue(to)}`);
        L.push(`      #   key: [${p.key.map(yamlValue).join(', ')}]   # ${p.keyFrom}`);
      } else L.push(...columnComment(p, '      #   '));
    }
  }
  return { text: `${L.join('\n')}\n`, plans, env };
}

/** `# public.users: id bigint NOT NULL, email character varying(200), …`, wrapped at about 100 characters. */
function columnComment(p: TablePlan, prefix: string): string[] {
  const cols = p.columns.columns;
  const lines: string[] = [];
  let cur = `${prefix}${p.columns.table}:`;
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
