/**
 * docs/config.md, generated from the config spec (schema.ts) and the specs of the registered
 * connectors: the same declarations that validate a config file (load.ts). Nothing here is written
 * by hand per option; an option appears in the reference because it is in a spec, with the type,
 * default, description, example and secret flag declared there.
 *
 * The specs are converted with z.toJSONSchema (io 'input': what a user may write, so a field with a
 * default is not required) and that JSON Schema is walked: one section per mapping, one table row
 * per option. `pipelines.<name>.source` and `.target` are not expanded in place; each registered
 * connector gets its own section instead, chosen by `type`.
 *
 * Connectors must be registered first (import connectors/index.js). Output is deterministic (CI
 * compares it with docs/config.md: scripts/gen-config-docs.ts --check).
 */
import { z } from 'zod';
import { registeredSinks, registeredSources } from '../registry.js';
import { configSpec, targetSpec } from './schema.js';

/** The subset of JSON Schema that z.toJSONSchema emits for our specs. */
interface JsonSchema {
  /** A list for a union of primitive types (z.union([z.number(), z.string()])). */
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  examples?: unknown[];
  secret?: boolean;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
}

interface Row {
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
  example?: unknown;
  secret: boolean;
  description: string;
}

interface Section {
  anchor: string;
  path: string;
  /** Nesting below the first section collected (for the table of contents). */
  depth: number;
  description?: string;
  rows: Row[];
}

const toJson = (schema: z.ZodType): JsonSchema => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as unknown as JsonSchema;

const anchorOf = (prefix: string, path: string) =>
  `${prefix}${path || 'top-level'}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

const isMapping = (s: JsonSchema) => s.type === 'object' && s.properties !== undefined;
const recordValue = (s: JsonSchema) => (s.type === 'object' && !s.properties && typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);

/** Integers carry Number.MAX_SAFE_INTEGER / MIN as bounds when none was declared: not worth printing. */
const bound = (n: number | undefined) => (n === undefined || Math.abs(n) >= Number.MAX_SAFE_INTEGER ? undefined : n);

function typeOf(s: JsonSchema, link?: (what: string) => string): string {
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return alts.map((a) => typeOf(a, link)).join(' or ');
  if (Array.isArray(s.type)) return s.type.map((t) => typeOf({ ...s, type: t }, link)).join(' or ');
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return `one of ${s.enum.map((v) => `\`${String(v)}\``).join(', ')}`;
  switch (s.type) {
    case 'string': {
      const parts: string[] = [s.minLength === 1 ? 'non-empty string' : 'string'];
      if (s.format) parts.push(s.format === 'uri' ? '(URL)' : `(${s.format})`);
      if (s.pattern) parts.push(`matching \`${s.pattern}\``);
      if (s.minLength !== undefined && s.minLength > 1) parts.push(`of at least ${s.minLength} characters`);
      if (s.maxLength !== undefined) parts.push(`of at most ${s.maxLength} characters`);
      return parts.join(' ');
    }
    case 'integer':
    case 'number': {
      const min = bound(s.minimum ?? s.exclusiveMinimum);
      const max = bound(s.maximum ?? s.exclusiveMaximum);
      const lo = s.exclusiveMinimum !== undefined ? '>' : '≥';
      const hi = s.exclusiveMaximum !== undefined ? '<' : '≤';
      const range = min !== undefined && max !== undefined ? ` ${min}–${max}` : min !== undefined ? ` ${lo} ${min}` : max !== undefined ? ` ${hi} ${max}` : '';
      return `${s.type}${range}`;
    }
    case 'boolean':
      return 'boolean';
    case 'array': {
      const item = s.items ? typeOf(s.items, link) : 'anything';
      return `${s.minItems && s.minItems > 0 ? 'non-empty list' : 'list'} of ${item}`;
    }
    case 'object': {
      if (s.properties) return link ? link('mapping') : 'mapping';
      const value = recordValue(s);
      const keys = s.propertyNames?.pattern ? `name matching \`${s.propertyNames.pattern}\`` : 'string';
      return `map of ${keys} → ${value ? typeOf(value, link) : 'anything'}`;
    }
    default:
      return s.type ?? 'anything';
  }
}

/** An option documented elsewhere (a connector section): the type and description of its row. */
type Stop = (path: string) => { type: string; description: string } | undefined;

/**
 * Collects one section per mapping under `schema` (depth-first, in declaration order).
 * `stop` replaces the row of options documented elsewhere, which are not expanded.
 */
function collect(schema: JsonSchema, path: string, anchorPrefix: string, out: Section[], stop: Stop, depth = 0, description?: string): void {
  const section: Section = { anchor: anchorOf(anchorPrefix, path), path, depth, description: description ?? schema.description, rows: [] };
  out.push(section);
  const nested: [JsonSchema, string][] = [];
  const required = new Set(schema.required ?? []);
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    const childPath = path ? `${path}.${key}` : key;
    const replaced = stop(childPath);
    let type: string;
    if (replaced !== undefined) type = replaced.type;
    else {
      // The mapping this option leads to, if any: itself, a map's values, or a list's items.
      let target: [JsonSchema, string] | undefined;
      const value = recordValue(prop);
      if (isMapping(prop)) target = [prop, childPath];
      else if (value && isMapping(value)) target = [value, `${childPath}.<name>`];
      else if (prop.type === 'array' && prop.items && isMapping(prop.items)) target = [prop.items, `${childPath}[]`];
      const link = target ? (what: string) => `${what} ([\`${target[1]}\`](#${anchorOf(anchorPrefix, target[1])}))` : undefined;
      type = typeOf(prop, link);
      if (target) nested.push(target);
    }
    section.rows.push({
      path: childPath,
      type,
      required: required.has(key),
      default: prop.default,
      example: prop.examples?.[0],
      secret: prop.secret === true,
      description: replaced?.description ?? prop.description ?? '',
    });
  }
  for (const [child, childPath] of nested) collect(child, childPath, anchorPrefix, out, stop, depth + 1);
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n+/g, ' ');
/** Prose outside code spans: `<prefix>` would be taken for an HTML tag. */
const prose = (s: string) => cell(s).replace(/</g, '&lt;').replace(/>/g, '&gt;');

function code(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) return '(all defaults)';
  return `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;
}

/** `level` 0: no heading (the caller wrote one). */
function renderSection(s: Section, level: number): string {
  const lines = level > 0 ? [`<a id="${s.anchor}"></a>`, '', `${'#'.repeat(level)} ${s.path ? `\`${s.path}\`` : 'Top level'}`, ''] : [];
  if (s.description) lines.push(prose(s.description), '');
  if (s.rows.length === 0) return lines.join('\n');
  lines.push('| Option | Type | Required | Default | Example | Secret | Description |', '|---|---|---|---|---|---|---|');
  for (const r of s.rows) {
    lines.push(`| \`${r.path}\` | ${cell(r.type)} | ${r.required ? 'yes' : 'no'} | ${cell(code(r.default))} | ${cell(code(r.example))} | ${r.secret ? 'yes' : ''} | ${prose(r.description)} |`);
  }
  lines.push('');
  return lines.join('\n');
}

export function renderConfigDocs(): string {
  const sources = registeredSources();
  const sinks = registeredSinks();
  const connectorLink = (kind: 'source' | 'target', types: string[]) =>
    `mapping: one of the ${kind} connectors, chosen by \`type\` (${types.map((t) => `[\`${t}\`](#${anchorOf(`${kind}-${t}-`, `pipelines.<name>.${kind}`)})`).join(', ')})`;
  const stop: Stop = (path) => {
    if (path === 'pipelines.<name>.source') return { type: connectorLink('source', sources.map((s) => s.type)), description: 'Where changes are captured from.' };
    if (path === 'pipelines.<name>.target') return { type: connectorLink('target', sinks.map((s) => s.type)), description: 'Where changes are written to.' };
    return undefined;
  };

  const main: Section[] = [];
  collect(toJson(configSpec()), '', '', main, stop, 0, 'The config file is one YAML mapping.');

  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated by scripts/gen-config-docs.ts from src/core/config/schema.ts and the connector specs.',
    '     Do not edit by hand: run `npm run docs:config`. CI runs it with --check. -->',
    '',
    'syncline reads one YAML file (example: [`configs/data-sync-config.yaml`](../configs/data-sync-config.yaml)).',
    'Check a file without starting anything with `syncline config validate FILE`; every mistake is',
    'reported as `FILE:LINE:COL: path.to.option: reason`, all of them at once.',
    '',
    '**Starting a config.** `syncline init --source postgres://user:password@host:port/database',
    '[--target postgres://…] [--tables a,schema.b] [--pipeline NAME] [--out FILE]` reads the source\'s',
    'catalog and writes a commented file with one pipeline: every table that can be captured as it is,',
    'with its `key` and its columns and their SQL types as comments; in comments, every table that',
    'cannot yet, with the exact fix (`ALTER TABLE … REPLICA IDENTITY FULL;` on the source, then the',
    '`key:` to add; tables whose names the table pattern cannot express are listed too); passwords as',
    '`${SYNCLINE_SOURCE_PASSWORD}` / `${SYNCLINE_TARGET_PASSWORD}`, never the password of the URL. The',
    'file passes `syncline config validate` once those variables are set.',
    '',
    '**Checking what a config needs.** `syncline doctor [--config FILE] [--pipeline NAME]` checks every',
    'prerequisite of every enabled pipeline and prints, per failing check, what is wrong and the SQL or',
    'setting that fixes it: the source server\'s `wal_level` and free `max_replication_slots` /',
    '`max_wal_senders`; the source user\'s REPLICATION right and SELECT rights; the publication (present',
    'or creatable, publishing inserts, updates, deletes and truncates, covering the tables); each table\'s',
    'replica identity against its key; an existing slot (a logical slot of the database with the plugin syncline reads, not',
    'left inactive while holding a WAL segment or more: the bytes it holds are shown); Kafka reachable',
    'and the topics creatable (validated by the broker, nothing created); the compatibility level of',
    'each subject in the registry (BACKWARD, or unset); Redis reachable and writable under the',
    'pipeline\'s keys; each target table present with a primary key or unique index on the key, the',
    'columns, and SELECT, INSERT, UPDATE, DELETE and TRUNCATE rights (two-way pipelines: the replication',
    'origin functions). Exit 0 only when every check passes.',
    '',
    '**Environment variables.** In any value (not in keys), `${NAME}` is replaced by the variable `NAME`',
    '(the file is refused if it is not set) and `${NAME:-default}` by `NAME`, or `default` when `NAME` is',
    'unset or empty. `$${` is a literal `${`. Where an option expects a number or `true`/`false`, an',
    'interpolated value is read as one (`port: ${PGPORT:-5432}`). Inside `{ … }` or `[ … ]` quote a value',
    'that uses `${`: `{ database: "${DB}" }`.',
    'Options marked *secret* (passwords) should always come from a variable; their values are never',
    'printed, not even in error messages.',
    '',
    '**Reading the tables.** `<name>` stands for a key you choose (a pipeline name), `[]` for every item of',
    'a list. *Required* applies when the enclosing mapping is present. Unknown keys are errors, except',
    'top-level keys starting with `x-`, which are ignored: a place for YAML anchors (`x-pg: &pg { … }`)',
    'that pipelines reuse with `*pg` or `<<: *pg`.',
    '',
    '## Contents',
    '',
  ];
  const toc = (s: Section, depth: number) => `${'  '.repeat(depth)}- [${s.path ? `\`${s.path}\`` : 'Top level'}](#${s.anchor})`;
  for (const s of main) out.push(toc(s, Math.max(0, s.depth - 1)));
  out.push('- [Source connectors](#source-connectors)');
  for (const r of sources) out.push(`  - [\`${r.type}\`](#${anchorOf(`source-${r.type}-`, 'pipelines.<name>.source')})`);
  out.push('- [Target connectors](#target-connectors)');
  for (const r of sinks) out.push(`  - [\`${r.type}\`](#${anchorOf(`target-${r.type}-`, 'pipelines.<name>.target')})`);
  out.push('');

  for (const s of main) out.push(renderSection(s, 2));

  const connectorSections = (kind: 'source' | 'target', title: string, regs: { type: string; description: string; spec: z.ZodObject }[]) => {
    out.push(`<a id="${kind}-connectors"></a>`, '', `## ${title}`, '');
    out.push(`\`pipelines.<name>.${kind}\` is one of these, chosen by its \`type\`.`, '');
    for (const r of regs) {
      const schema = toJson(r.spec);
      const sections: Section[] = [];
      collect(schema, `pipelines.<name>.${kind}`, `${kind}-${r.type}-`, sections, () => undefined);
      const [first, ...rest] = sections;
      out.push(`<a id="${first!.anchor}"></a>`, '', `### \`${r.type}\``, '', prose(r.description), '');
      if (schema.description && schema.description !== r.description) out.push(prose(schema.description), '');
      out.push(renderSection({ ...first!, description: undefined }, 0));
      for (const s of rest) out.push(renderSection(s, 4));
    }
  };
  connectorSections('source', 'Source connectors', sources);
  connectorSections('target', 'Target connectors', sinks.map((r) => ({ ...r, spec: targetSpec(r.spec) })));

  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}
