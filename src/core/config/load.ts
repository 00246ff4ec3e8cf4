/**
 * Config loading: YAML text → interpolated → validated against configSpec() → SynclineConfig.
 *
 * Every mistake is reported with the file, line and column where it was made, all at once, in a
 * single ConfigError (kind fatal: the process stops, no restart loop):
 *
 *   configs/sync.yaml:14:7: pipelines.users-sync.tabels: unknown key 'tabels' (did you mean 'tables'?)
 *   configs/sync.yaml:22:15: pipelines.users-sync.source.connection.port: expected integer, got string "abc"
 *
 * Steps:
 *  1. Parse with `yaml` (parseDocument + LineCounter, so every node knows its offsets). Syntax errors
 *     stop here, reported at their line and column.
 *  2. Interpolate `${VAR}` and `${VAR:-default}` in scalar values (not keys); `$${` is a literal `${`.
 *     An unset variable without a default is an error naming the variable. `:-` also applies the
 *     default when the variable is set but empty (shell semantics).
 *  3. Validate with configSpec() (zod). Each issue's path is walked back through the YAML tree to
 *     the node it concerns (see Locator). A value produced by interpolation (`port: ${PGPORT:-5432}`)
 *     is converted where zod wants a number or boolean and it reads as one: environment variables
 *     are always strings. Quoted or not, since inside a flow collection (`{ port: "${PGPORT}" }`)
 *     `${` must be quoted. A literal "5432" without interpolation stays a string (and is refused).
 *     Top-level keys starting with `x-` are ignored: a place for YAML anchors (`x-pg: &pg {...}`).
 *  4. Semantic checks zod cannot express (what a source must own alone, e.g. PostgreSQL slots and
 *     publications; custom conflict needs module…).
 *
 * Secrets: the value of a field whose spec carries meta `{ secret: true }` (or whose key looks like
 * one: password, token, secret…) is never printed; messages say "(secret, not shown)". YAML syntax
 * errors are reported without the source excerpt for the same reason.
 *
 * Connectors must be registered before loading (import connectors/index.js), since the source and
 * target sections come from the registry.
 */
import { installMasking } from '../../security/masking/text.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { SynclineError } from '../errors.js';
import { configSpec, type SynclineConfig } from './schema.js';
import { checkTableValidation } from '../../process/validation/compile.js';
import { checkTableTransforms } from '../../process/transform/compile.js';
import { checkTableRoute } from '../../process/transform/route.js';
import { canonicalTableName } from '../names.js';
import { registeredSources } from '../registry.js';
import { own } from '../envelope.js';

export interface ConfigProblem {
  file: string;
  /** 1-based; 0 when the problem concerns the whole file (unreadable). */
  line: number;
  /** 1-based; 0 with line 0. */
  col: number;
  /** Dotted path of the option, e.g. `pipelines.users-sync.tables[0].source`; '' for the document. */
  path: string;
  message: string;
}

export class ConfigError extends SynclineError {
  readonly file: string;
  readonly problems: ConfigProblem[];
  constructor(file: string, problems: ConfigProblem[]) {
    const n = problems.length;
    super('fatal', 'CONFIG_INVALID', `invalid config ${file} (${n} problem${n === 1 ? '' : 's'}):\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

/** `FILE:LINE:COL: path: message` (or `FILE: message` for a whole-file problem). */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.file;
  return `${where}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

export type Env = Record<string, string | undefined>;

export function loadConfig(file: string, env: Env = process.env): SynclineConfig {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? String(err)})`;
    throw new ConfigError(file, [{ file, line: 0, col: 0, path: '', message: why }]);
  }
  const config = parseConfig(bytes.toString('utf8'), file, env);
  // The digest of the bytes on disk (what `sha256sum FILE` prints), also for a file that is not clean UTF-8.
  sources.get(config)!.sha256 = createHash('sha256').update(bytes).digest('hex');
  // Every command that loads a config (syncline start, report, dlq, …) masks what it shows and logs by its policy.
  installMasking(config);
  return config;
}

export function parseConfig(text: string, file: string, env: Env = process.env): SynclineConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, merge: true, uniqueKeys: true });
  const at = (offset: number) => lineCounter.linePos(offset);

  // 1. Syntax.
  // Only the first error: the parser's later ones are mostly consequences of it.
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = syntax.linePos?.[0] ?? at(syntax.pos[0]);
    // prettyErrors appends " at line L, column C:" and a source excerpt; keep only the reason
    // (the excerpt could show a secret).
    const reason = (syntax.message.split('\n')[0] ?? syntax.message).replace(/ at line \d+, column \d+:?$/, '');
    const more = doc.errors.length > 1 ? ` (${doc.errors.length - 1} more error${doc.errors.length > 2 ? 's' : ''} after it, not shown)` : '';
    throw new ConfigError(file, [{ file, line: pos.line, col: pos.col, path: '', message: `YAML syntax error: ${reason}${more}` }]);
  }

  // 2. Interpolation.
  const problems: ConfigProblem[] = [];
  const interpolated = new WeakSet<YamlNode>();
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const r = interpolate(node.value, env);
      if (r.errors.length > 0) {
        const pos = at(node.range?.[0] ?? 0);
        const path = formatPath(pathOfAncestors(ancestors, node));
        for (const message of r.errors) problems.push({ file, line: pos.line, col: pos.col, path, message });
        return;
      }
      if (r.value !== node.value) {
        node.value = r.value;
        if (r.substituted) interpolated.add(node);
      }
    },
  });
  // A mapping key `__proto__` would set the prototype of the object it is read into: the pipeline (or
  // option) it names would vanish without a word. Refused where it is written.
  visit(doc, {
    Pair(_, pair, ancestors) {
      if (!isScalar(pair.key) || pair.key.value !== '__proto__') return;
      const pos = at(pair.key.range?.[0] ?? 0);
      problems.push({ file, line: pos.line, col: pos.col, path: formatPath(pathOfAncestors(ancestors, pair)), message: "a key named '__proto__' cannot be read (a JavaScript object cannot hold it); rename it" });
    },
  });
  if (problems.length > 0) throw new ConfigError(file, sortProblems(problems));

  // 3. Schema.
  const spec = configSpec();
  const data: unknown = doc.toJS({ maxAliasCount: 1000 });
  // Top-level `x-…` keys are extension fields (a place for YAML anchors), as in Compose files.
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    for (const key of Object.keys(data)) if (key.startsWith('x-')) delete (data as Record<string, unknown>)[key];
  }
  const locator = new Locator(doc, lineCounter);
  // Fan-out (ADR 0039): a pipeline that follows another takes its source; problems of that source are the other's.
  const followers = fillFollowers(data, (path, message) => {
    const pos = locator.value(path);
    problems.push({ file, line: pos.line, col: pos.col, path: formatPath(path), message });
  });
  const borrowed = (path: readonly PropertyKey[]) => path[0] === 'pipelines' && followers.has(String(path[1])) && (path[2] === 'source' || path[2] === 'changeTopicPrefix');
  let result = spec.safeParse(data);
  for (let round = 0; !result.success && round < 5; round++) {
    if (!coerceInterpolated(result.error.issues, locator, data, interpolated)) break;
    result = spec.safeParse(data);
  }
  if (!result.success) for (const issue of result.error.issues) if (!borrowed(issue.path)) problems.push(...issueProblems(issue, file, spec, data, locator));

  // 4. Semantics (also when the schema failed, so that one run lists every problem).
  problems.push(...semanticProblems(data, file, locator));
  if (problems.length > 0 || !result.success) throw new ConfigError(file, sortProblems(problems));
  // Looked up by names from the command line and the HTTP API: without a prototype, 'constructor' or
  // 'toString' finds a pipeline of that name or nothing (not Object.prototype's).
  Object.setPrototypeOf(result.data.pipelines, null);
  sources.set(result.data, { file, text, sha256: createHash('sha256').update(text, 'utf8').digest('hex') });
  // Custom transform modules are relative to the config file: made absolute once, here.
  for (const p of Object.values(result.data.pipelines)) {
    for (const t of p.tables) for (const step of t.transform ?? []) if (step.custom) step.custom.module = resolve(dirname(file), step.custom.module);
  }
  return result.data;
}

// ---------------------------------------------------------------------------------------------
// Locating problems found after loading (checks that need the file's modules, at start-up)

/** The file and text each loaded config came from (for checks that run later, e.g. validateRules). */
const sources = new WeakMap<object, { file: string; text: string; sha256: string }>();

/** Where `config` was loaded from (undefined for a config built in code). */
export function configSource(config: SynclineConfig): { file: string; text: string; sha256: string } | undefined {
  return sources.get(config);
}

/**
 * What the audit trail records as `config.loaded`: the file and the SHA-256 of its bytes (as
 * `sha256sum FILE` prints it); for a config built in code, `(in memory)` and the SHA-256 of its JSON.
 */
export function configDigest(config: SynclineConfig): { path: string; sha256: string } {
  const s = sources.get(config);
  if (s) return { path: s.file, sha256: s.sha256 };
  const json = JSON.stringify(config, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  return { path: '(in memory)', sha256: createHash('sha256').update(json, 'utf8').digest('hex') };
}

/** Line and column of the option at `path` (of its key with `atKey`) in a config file's text, as the loader reports them. */
export function locate(text: string, path: readonly (string | number)[], atKey = false): { line: number; col: number } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, merge: true });
  const loc = new Locator(doc, lineCounter);
  return atKey ? loc.key(path) : loc.value(path);
}

/** A ConfigProblem for the option at `path`; without the text, it concerns the whole file (line 0). */
export function locateProblem(file: string, text: string | undefined, path: readonly (string | number)[], message: string, atKey = false): ConfigProblem {
  const pos = text === undefined ? { line: 0, col: 0 } : locate(text, path, atKey);
  return { file, line: pos.line, col: pos.col, path: formatPath(path), message };
}

/** Sorted, de-duplicated: the order ConfigError lists problems in. */
export function configError(file: string, problems: ConfigProblem[]): ConfigError {
  return new ConfigError(file, sortProblems(problems));
}

// ---------------------------------------------------------------------------------------------
// Interpolation

interface Interpolated {
  value: string;
  /** At least one ${…} was replaced (an escaped `$${` alone does not count). */
  substituted: boolean;
  errors: string[];
}

/** `${VAR}`, `${VAR:-default}`; `$${` is a literal `${`; any other `$` is literal. */
export function interpolate(s: string, env: Env): Interpolated {
  let out = '';
  let substituted = false;
  const errors: string[] = [];
  let i = 0;
  while (i < s.length) {
    const j = s.indexOf('$', i);
    if (j < 0) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, j);
    if (s.startsWith('$${', j)) {
      out += '${';
      i = j + 3;
      continue;
    }
    if (s[j + 1] !== '{') {
      out += '$';
      i = j + 1;
      continue;
    }
    const end = s.indexOf('}', j + 2);
    if (end < 0) {
      errors.push("unterminated '${' (write '$${' for a literal '${')");
      break;
    }
    const inner = s.slice(j + 2, end);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/.exec(inner);
    if (!m) {
      errors.push(`invalid reference '\${${inner}}': expected \${NAME} or \${NAME:-default} (write '$\${' for a literal '\${')`);
      i = end + 1;
      continue;
    }
    const name = m[1]!;
    const fallback = m[2];
    const value = env[name];
    substituted = true;
    if (value !== undefined && !(fallback !== undefined && value === '')) out += value;
    else if (fallback !== undefined) out += fallback;
    else errors.push(`environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
    i = end + 1;
  }
  return { value: out, substituted, errors };
}

/** Where a node visited by yaml's visit() sits: keys of the maps and indexes of the seqs above it. */
function pathOfAncestors(ancestors: readonly unknown[], node: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  const chain = [...ancestors, node];
  for (let k = 0; k < chain.length - 1; k++) {
    const parent = chain[k];
    const child = chain[k + 1];
    if (isPair(parent)) continue;
    if (isMap(parent) && isPair(child)) path.push(keyString(child.key));
    else if (isSeq(parent)) path.push(parent.items.indexOf(child as never));
  }
  return path;
}

function keyString(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

/**
 * Converts an interpolated value that zod wants as a number or boolean. Returns whether anything
 * changed (the caller validates again).
 */
function coerceInterpolated(issues: readonly z.core.$ZodIssue[], locator: Locator, data: unknown, interpolated: WeakSet<YamlNode>): boolean {
  let changed = false;
  for (const issue of issues) {
    if (issue.code !== 'invalid_type' || !['number', 'int', 'boolean'].includes(issue.expected)) continue;
    const path = issue.path as (string | number)[];
    const node = locator.node(path);
    if (!isScalar(node) || !interpolated.has(node) || typeof node.value !== 'string') continue;
    const text = node.value.trim();
    let value: number | boolean | undefined;
    if (issue.expected === 'boolean') value = text === 'true' ? true : text === 'false' ? false : undefined;
    else if (/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(text)) value = Number(text);
    if (value === undefined) continue;
    const parent = valueAt(data, path.slice(0, -1));
    if (parent === null || typeof parent !== 'object') continue;
    (parent as Record<string | number, unknown>)[path[path.length - 1]!] = value;
    changed = true;
  }
  return changed;
}

// ---------------------------------------------------------------------------------------------
// Locating a path in the YAML document

interface Pos {
  line: number;
  col: number;
}

class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  private pos(node: YamlNode | null | undefined): Pos | undefined {
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : this.lines.linePos(offset);
  }

  private walk(path: readonly (string | number)[]) {
    let node: unknown = this.doc.contents;
    let key: YamlNode | undefined;
    let depth = 0;
    for (const seg of path) {
      const cur = isAlias(node) ? node.resolve(this.doc) : node;
      let next: unknown;
      let nextKey: YamlNode | undefined;
      if (isMap(cur)) {
        const pair = cur.items.find((p) => keyString(p.key) === String(seg));
        if (!pair) break;
        next = pair.value;
        nextKey = pair.key as YamlNode;
      } else if (isSeq(cur) && typeof seg === 'number' && seg < cur.items.length) {
        next = cur.items[seg];
      } else break;
      node = next;
      key = nextKey;
      depth++;
    }
    return { node: node as YamlNode | null | undefined, key, depth, complete: depth === path.length };
  }

  /** The node at `path` (through aliases), if the file has one there. */
  node(path: readonly (string | number)[]): YamlNode | null | undefined {
    const w = this.walk(path);
    return w.complete ? w.node : undefined;
  }

  /**
   * Position of the value at `path`. A scalar or flow collection: the value itself. A block
   * collection or an empty value: its key. A path that is not in the file (a missing required field,
   * or a value that came from a default): the key of the deepest mapping that is (the parent
   * mapping of a missing field).
   */
  value(path: readonly (string | number)[]): Pos {
    const w = this.walk(path);
    const node = w.node;
    const keyPos = this.pos(w.key);
    const nodePos = this.pos(node);
    const fallback = nodePos ?? keyPos ?? { line: 1, col: 1 };
    if (!w.complete) return keyPos ?? fallback;
    if (isScalar(node)) return node.value === null && keyPos ? keyPos : fallback;
    const flow = (node as { flow?: boolean } | null | undefined)?.flow === true;
    if (flow) return fallback;
    return keyPos ?? fallback;
  }

  /** Position of the key at the end of `path` (unknown keys, invalid record keys). */
  key(path: readonly (string | number)[]): Pos {
    const w = this.walk(path);
    if (w.complete && w.key) return this.pos(w.key) ?? this.value(path);
    return this.value(path);
  }
}

// ---------------------------------------------------------------------------------------------
// Zod issues → problems

type Seg = string | number;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

const SECRET_KEY = /pass(word|wd|phrase)?$|secret|token|api[-_]?key|credential|private[-_]?key/i;

type Def = { type: string } & Record<string, unknown>;
const defOf = (s: z.ZodType): Def => s._zod.def as unknown as Def;

/** Unwraps optional/default/… layers; reports whether any layer is marked secret. */
function unwrap(s: z.ZodType): { schema: z.ZodType; secret: boolean } {
  let secret = false;
  let cur = s;
  for (let i = 0; i < 20; i++) {
    if (z.globalRegistry.get(cur)?.secret === true) secret = true;
    const def = defOf(cur);
    if (['optional', 'nullable', 'default', 'prefault', 'nonoptional', 'readonly', 'catch'].includes(def.type)) cur = def.innerType as z.ZodType;
    else if (def.type === 'pipe') cur = def.in as z.ZodType;
    else if (def.type === 'lazy') cur = (def.getter as () => z.ZodType)();
    else break;
  }
  return { schema: cur, secret };
}

/** For a union, the option that applies to `data` (by discriminator, else by key). */
function pickOption(s: z.ZodType, data: unknown, seg?: Seg): z.ZodType | undefined {
  const def = defOf(s);
  if (def.type !== 'union') return s;
  const options = def.options as z.ZodType[];
  const disc = def.discriminator as string | undefined;
  const obj = data !== null && typeof data === 'object' ? (data as Record<string, unknown>) : {};
  for (const o of options) {
    const u = unwrap(o).schema;
    const d = defOf(u);
    if (d.type !== 'object') continue;
    const shape = d.shape as Record<string, z.ZodType>;
    if (disc !== undefined) {
      const lit = shape[disc] ? defOf(unwrap(shape[disc]).schema) : undefined;
      if (lit && Array.isArray(lit.values) && lit.values.includes(obj[disc])) return u;
    } else if (seg !== undefined && typeof seg === 'string' && seg in shape) return u;
  }
  return undefined;
}

/** The schema at `path` (following the data through unions) and whether it is secret. */
function schemaAt(root: z.ZodType, data: unknown, path: readonly Seg[]): { schema?: z.ZodType; secret: boolean } {
  let { schema, secret } = unwrap(root);
  let value = data;
  for (const seg of path) {
    const picked = pickOption(schema, value, seg);
    if (!picked) return { secret: secret || (typeof seg === 'string' && SECRET_KEY.test(seg)) };
    const def = defOf(picked);
    let next: z.ZodType | undefined;
    if (def.type === 'object') next = (def.shape as Record<string, z.ZodType>)[String(seg)];
    else if (def.type === 'record') next = def.valueType as z.ZodType;
    else if (def.type === 'array') next = def.element as z.ZodType;
    else if (def.type === 'tuple') next = typeof seg === 'number' ? (def.items as z.ZodType[])[seg] : undefined;
    if (typeof seg === 'string' && SECRET_KEY.test(seg)) secret = true;
    if (!next) return { secret };
    const u = unwrap(next);
    schema = u.schema;
    secret ||= u.secret;
    value = value !== null && typeof value === 'object' ? (value as Record<Seg, unknown>)[seg] : undefined;
  }
  return { schema, secret };
}

/** Keys an object at `path` accepts (for "did you mean"). */
function knownKeys(root: z.ZodType, data: unknown, path: readonly Seg[]): string[] {
  const { schema } = schemaAt(root, data, path);
  if (!schema) return [];
  const picked = pickOption(schema, valueAt(data, path));
  if (!picked) return [];
  const def = defOf(picked);
  return def.type === 'object' ? Object.keys(def.shape as object) : [];
}

/** Optimal string alignment distance (a transposition counts as one edit). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  return bestD <= limit ? best : undefined;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'mapping',
  record: 'mapping',
  map: 'mapping',
  array: 'list',
  tuple: 'list',
  int: 'integer',
  number: 'number',
  string: 'string',
  boolean: 'boolean',
  null: 'empty value',
};

function describeValue(v: unknown, secret: boolean): string {
  const kind = v === null ? 'empty value' : Array.isArray(v) ? 'list' : typeof v === 'object' ? 'mapping' : typeof v;
  if (v === null || Array.isArray(v) || typeof v === 'object') return kind;
  if (secret) return `${kind} (secret, not shown)`;
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
  return `${kind} ${String(v)}`;
}

/** z.number().int(): a number with an integer format check. */
function isInteger(s: z.ZodType | undefined): boolean {
  if (!s) return false;
  const checks = (defOf(s).checks as { _zod: { def: { check?: string; format?: string } } }[] | undefined) ?? [];
  return defOf(s).type === 'number' && (/int/.test(String(defOf(s).format ?? '')) || checks.some((c) => c._zod.def.check === 'number_format' && /int/.test(c._zod.def.format ?? '')));
}

const literal = (v: unknown) => (typeof v === 'string' ? `'${v}'` : String(v));

function issueProblems(issue: z.core.$ZodIssue, file: string, spec: z.ZodType, data: unknown, loc: Locator): ConfigProblem[] {
  const path = issue.path as Seg[];
  const problem = (p: readonly Seg[], pos: Pos, message: string): ConfigProblem => ({ file, line: pos.line, col: pos.col, path: formatPath(p), message });

  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(spec, data, path);
    return issue.keys.map((k) => {
      const guess = closest(k, known);
      const hint = guess ? ` (did you mean '${guess}'?)` : known.length > 0 && known.length <= 12 ? ` (expected one of: ${known.join(', ')})` : '';
      return problem([...path, k], loc.key([...path, k]), `unknown key '${k}'${hint}`);
    });
  }

  const value = valueAt(data, path);
  const { secret } = schemaAt(spec, data, path);
  const got = () => describeValue(value, secret);

  if (issue.code === 'invalid_key') {
    const key = String(path[path.length - 1]);
    const why = issue.issues.map((i) => (i.code === 'invalid_format' && i.message.startsWith('Invalid') ? `must match ${String((i as { pattern?: unknown }).pattern ?? i.format)}` : i.message)).join('; ');
    return [problem(path, loc.key(path), `invalid name '${key}': ${why}`)];
  }

  // A value that is not there: a missing required field, reported at its parent mapping.
  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union' || issue.code === 'invalid_value')) {
    let msg = 'required';
    if (issue.code === 'invalid_union' && Array.isArray((issue as { options?: unknown }).options)) msg = `required (one of: ${((issue as { options: unknown[] }).options).map(literal).join(', ')})`;
    else if (issue.code === 'invalid_value' && issue.values.length === 1) msg = `required (must be ${literal(issue.values[0])})`;
    else if (issue.code === 'invalid_value') msg = `required (one of: ${issue.values.map(literal).join(', ')})`;
    return [problem(path, loc.value(path), msg)];
  }

  const pos = loc.value(path);
  let message: string;
  switch (issue.code) {
    case 'invalid_type': {
      const expected = issue.expected === 'number' && isInteger(schemaAt(spec, data, path).schema) ? 'int' : issue.expected;
      message = `expected ${TYPE_NAMES[expected] ?? expected}, got ${got()}`;
      break;
    }
    case 'invalid_value': {
      const vals = issue.values;
      const guess = typeof value === 'string' && !secret ? closest(value, vals.filter((v): v is string => typeof v === 'string')) : undefined;
      message = `${vals.length === 1 ? `must be ${literal(vals[0])}` : `must be one of ${vals.map(literal).join(', ')}`}, got ${got()}${guess ? ` (did you mean '${guess}'?)` : ''}`;
      break;
    }
    case 'invalid_union': {
      const options = (issue as { options?: unknown[] }).options;
      if (Array.isArray(options) && value !== undefined) {
        const guess = typeof value === 'string' ? closest(value, options.filter((v): v is string => typeof v === 'string')) : undefined;
        message = `unknown ${String(path[path.length - 1] ?? 'value')} ${got()}, expected one of: ${options.map(literal).join(', ')}${guess ? ` (did you mean '${guess}'?)` : ''}`;
      } else message = `does not match any allowed form (got ${got()})`;
      break;
    }
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = Number(small ? issue.minimum : issue.maximum);
      const inclusive = issue.inclusive !== false;
      if (issue.origin === 'string') message = small && bound === 1 ? 'must not be empty' : `must be at ${small ? 'least' : 'most'} ${bound} characters long`;
      else if (issue.origin === 'array' || issue.origin === 'set') message = small && bound === 1 ? 'must have at least one item' : `must have at ${small ? 'least' : 'most'} ${bound} items`;
      else message = `must be ${small ? '>' : '<'}${inclusive ? '=' : ''} ${bound}, got ${got()}`;
      break;
    }
    case 'invalid_format': {
      const custom = !issue.message.startsWith('Invalid');
      const what = custom ? issue.message : issue.format === 'regex' ? `must match ${String((issue as { pattern?: unknown }).pattern)}` : `must be a valid ${issue.format === 'url' ? 'URL' : issue.format}`;
      message = `${what}, got ${got()}`;
      break;
    }
    case 'not_multiple_of':
      message = `must be a multiple of ${String(issue.divisor)}, got ${got()}`;
      break;
    default:
      message = issue.message;
  }
  return [problem(path, pos, message)];
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const k = formatProblem(p);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

// ---------------------------------------------------------------------------------------------
// Semantic checks zod cannot express. They run on the raw data even when the schema refused it
// (so one run lists every problem), hence the defensive reads.

/** The canonical form of a table name, or the text itself when it is not a valid name (the schema reports that). */
function canonicalOrSelf(text: string): string {
  try {
    return canonicalTableName(text);
  } catch {
    return text;
  }
}

const asObject = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

/**
 * Fan-out (ADR 0039): a pipeline with `follows: L` has no source of its own. Gives it L's `source`
 * and `changeTopicPrefix` (copies: checked and parsed as its own), and the key of each of L's
 * tables it leaves out; reports what makes the pair impossible. Returns the pipelines that follow
 * one (the schema's problems with their source are not theirs: reported on the followed pipeline, or
 * replaced by the reason it could not be given).
 */
function fillFollowers(data: unknown, add: (path: Seg[], message: string) => void): Set<string> {
  const filled = new Set<string>();
  const pipelines = asObject(asObject(data)?.pipelines);
  if (!pipelines) return filled;
  const names = Object.keys(pipelines);
  for (const [name, raw] of Object.entries(pipelines)) {
    const p = asObject(raw);
    const leaderName = p?.follows;
    if (!p || typeof leaderName !== 'string') continue; // absent, or a wrong type the schema reports
    filled.add(name);
    const at: Seg[] = ['pipelines', name];
    const leader = asObject(pipelines[leaderName]);
    if (leaderName === name) {
      add([...at, 'follows'], 'a pipeline cannot follow itself');
      continue;
    }
    if (!leader) {
      add([...at, 'follows'], `no pipeline '${leaderName}' to follow (have: ${names.filter((n) => n !== name).join(', ')})`);
      continue;
    }
    if (typeof leader.follows === 'string') {
      add([...at, 'follows'], `pipeline '${leaderName}' follows '${leader.follows}' itself: follow '${leader.follows}', the pipeline whose capture writes the change topics`);
      continue;
    }
    if (p.source !== undefined) {
      add([...at, 'source'], `a pipeline that follows '${leaderName}' has no source of its own (its changes come from the capture of '${leaderName}'): remove source`);
      continue;
    }
    if (p.changeTopicPrefix !== undefined && p.changeTopicPrefix !== leader.changeTopicPrefix) {
      add([...at, 'changeTopicPrefix'], `a pipeline that follows '${leaderName}' reads its change topics: remove changeTopicPrefix (it is '${String(leader.changeTopicPrefix ?? '(topicPrefix)')}' there)`);
      continue;
    }
    // Multi-way sync (ADR 0040): in a mesh, the pipelines leaving one database are a leader and its
    // followers, all two-way. Their capture leaves out what any two-way pipeline writes into that
    // database, which each of them receives from its own origin directly; a one-way follower would not.
    if (leader.peer !== undefined && p.peer === undefined) add([...at, 'follows'], `pipeline '${leaderName}' is two-way (peer ${String(leader.peer)}): its capture skips the changes two-way pipelines write into its source, so a one-way follower would miss them; follow neither, or make this a pipeline of its own`);
    if (p.peer !== undefined && leader.peer === undefined) add([...at, 'peer'], `a two-way pipeline can follow only a two-way pipeline (multi-way sync: the pipelines leaving one database): '${leaderName}' is one-way, so its capture would carry your peer's writes back to it; give this pipeline a source of its own`);
    for (const [who, x, path] of [['this pipeline', p, at], [`pipeline '${leaderName}'`, leader, ['pipelines', leaderName] as Seg[]]] as const) {
      if (x.mode !== undefined && x.mode !== 'realtime') add([...path, 'mode'], `${who} is part of a fan-out (${name} follows ${leaderName}): both run in mode realtime, got ${JSON.stringify(x.mode)}`);
    }
    if (p.enabled !== false && leader.enabled === false) add([...at, 'follows'], `pipeline '${leaderName}' is disabled (enabled: false): nothing would capture the changes this pipeline reads; disable this one too, or enable it`);
    if (leader.source === undefined) continue; // reported on the leader
    p.source = structuredClone(leader.source);
    if (leader.changeTopicPrefix !== undefined) p.changeTopicPrefix = leader.changeTopicPrefix;
    // Each table is one the leader captures, with its key and encrypted columns.
    const leaderTables = new Map<string, Record<string, unknown>>();
    for (const t of Array.isArray(leader.tables) ? leader.tables : []) {
      const lt = asObject(t);
      if (typeof lt?.source === 'string') leaderTables.set(canonicalOrSelf(lt.source), lt);
    }
    (Array.isArray(p.tables) ? p.tables : []).forEach((t, i) => {
      const ft = asObject(t);
      if (typeof ft?.source !== 'string') return;
      const lt = leaderTables.get(canonicalOrSelf(ft.source));
      if (!lt) {
        add([...at, 'tables', i, 'source'], `table ${ft.source} is not captured by pipeline '${leaderName}' (it captures ${[...leaderTables.keys()].join(', ') || 'nothing'}): add it to the tables of '${leaderName}'`);
        return;
      }
      if (ft.key === undefined && lt.key !== undefined) ft.key = structuredClone(lt.key);
      else if (JSON.stringify(ft.key ?? null) !== JSON.stringify(lt.key ?? null)) add([...at, 'tables', i, 'key'], `table ${ft.source}: key ${JSON.stringify(ft.key ?? '(primary key)')} differs from ${JSON.stringify(lt.key ?? '(primary key)')} in pipeline '${leaderName}', whose capture keys the change topic: leave key out (it is taken from there)`);
    });
  }
  return filled;
}

function semanticProblems(data: unknown, file: string, loc: Locator): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const add = (path: Seg[], message: string) => {
    const pos = loc.value(path);
    problems.push({ file, line: pos.line, col: pos.col, path: formatPath(path), message });
  };
  const root = asObject(data);
  const pipelines = Object.entries(asObject(root?.pipelines) ?? {});

  // What a pipeline's source must own alone (PostgreSQL: its slot and publication), as its connector says.
  const firstUse = new Map<string, { pipeline: string; field: string }>();
  for (const [name, p] of pipelines) {
    if (asObject(p)?.follows !== undefined) continue; // no capture: its source is the followed pipeline's
    const source = asObject(asObject(p)?.source);
    const reg = typeof source?.type === 'string' ? registeredSources().find((r) => r.type === source.type) : undefined;
    for (const c of (source && reg?.exclusive?.(source)) ?? []) {
      const id = `${reg!.type}\u0000${c.what}\u0000${c.id}`;
      const other = firstUse.get(id);
      if (other !== undefined) {
        const first = loc.value(['pipelines', other.pipeline, 'source', other.field]);
        add(['pipelines', name, 'source', c.field], `${c.what} '${String(source![c.field])}'${c.note ? ` (${c.note})` : ''} is already used by pipeline '${other.pipeline}' (line ${first.line}); each pipeline needs its own`);
      } else firstUse.set(id, { pipeline: name, field: c.field });
    }
  }

  const checkConflict = (path: Seg[], c: unknown) => {
    const conflict = asObject(c);
    if (conflict?.strategy !== 'custom') return;
    if (typeof conflict.module !== 'string' || conflict.module.trim() === '') add([...path, 'module'], "required when strategy is 'custom'");
  };
  checkConflict(['defaults', 'conflict'], asObject(root?.defaults)?.conflict);

  for (const [name, p] of pipelines) {
    const base: Seg[] = ['pipelines', name];
    const pipeline = asObject(p);
    const validation = asObject(pipeline?.validation);
    const hasModule = typeof validation?.module === 'string' && validation.module.trim() !== '';
    const mask = Array.isArray(validation?.mask) ? validation.mask.filter((m): m is string => typeof m === 'string') : [];
    checkConflict([...base, 'conflict'], pipeline?.conflict);
    const tables = Array.isArray(pipeline?.tables) ? (pipeline.tables as unknown[]) : [];
    const firstRow = new Map<string, number>();
    tables.forEach((t, i) => {
      const table = asObject(t);
      const tpath: Seg[] = [...base, 'tables', i];
      const source = table?.source;
      if (typeof source === 'string') {
        const prev = firstRow.get(canonicalOrSelf(source));
        if (prev !== undefined) {
          const first = loc.value([...base, 'tables', prev, 'source']);
          add([...tpath, 'source'], `table '${source}' is listed twice in this pipeline (first at line ${first.line})`);
        } else firstRow.set(canonicalOrSelf(source), i);
      }
      const key = Array.isArray(table?.key) ? (table.key as unknown[]) : [];
      const keySeen = new Set<string>();
      key.forEach((col, j) => {
        if (typeof col !== 'string') return; // the schema reports the type
        if (col !== '' && col.trim() === '') add([...tpath, 'key', j], 'key column must be a non-empty name, got only blanks');
        else if (keySeen.has(col)) add([...tpath, 'key', j], `key column '${col}' is listed twice`);
        keySeen.add(col);
      });
      checkConflict([...tpath, 'conflict'], table?.conflict);
      // Validation rules compile here (bad regex, unreadable bound, unparsable check…); custom
      // functions are resolved at start-up by validateRules() (src/process/validation/index.ts).
      if (table?.validate !== undefined) {
        const columns = asObject(table.columns) as Record<string, string> | undefined;
        const target = typeof table.target === 'string' ? table.target : typeof source === 'string' ? source : '?';
        for (const pr of checkTableValidation(table.validate, { table: target, columns, hasModule, mask })) {
          const path = [...tpath, 'validate', ...pr.path];
          if (!pr.atKey) add(path, pr.message);
          else {
            const pos = loc.key(path);
            problems.push({ file, line: pos.line, col: pos.col, path: formatPath(path), message: pr.message });
          }
        }
      }
      if (table?.route !== undefined) {
        // Routing (ADR 0038): the route picks the target table; its expressions compile here.
        const columns = (asObject(table.columns) ?? {}) as Record<string, string>;
        const name = typeof source === 'string' ? source : '?';
        if (table.target !== undefined) add([...tpath, 'target'], `table ${name}: a routed table has no single target: the route picks it (use route.default for rows no route matches)`);
        if (pipeline?.peer !== undefined) add([...tpath, 'route'], `table ${name}: a two-way pipeline (peer) cannot route: the other side would carry each route table back as a table of its own`);
        if (table.encrypt !== undefined) add([...tpath, 'encrypt'], `table ${name}: field encryption of a routed table is not supported yet (its keys are per target table)`);
        const key = Array.isArray(table.key) ? table.key.filter((k): k is string => typeof k === 'string').map((k) => own(columns, k) ?? k) : undefined;
        for (const pr of checkTableRoute(table.route, table.transform, { table: name, key })) add([...tpath, 'route', ...pr.path], pr.message);
      }
      if (Array.isArray(table?.transform)) {
        const columns = (asObject(table.columns) ?? {}) as Record<string, string>;
        const target = typeof table.target === 'string' ? table.target : typeof source === 'string' ? source : '?';
        const key = Array.isArray(table.key) ? table.key.filter((k): k is string => typeof k === 'string').map((k) => own(columns, k) ?? k) : undefined;
        const encrypted = Array.isArray(table.encrypt) ? table.encrypt.filter((k): k is string => typeof k === 'string').map((k) => own(columns, k) ?? k) : undefined;
        for (const pr of checkTableTransforms(table.transform, { table: target, key, encrypted })) add([...tpath, 'transform', ...pr.path], pr.message);
        (table.transform as unknown[]).forEach((step, j) => {
          const module = asObject(asObject(step)?.custom)?.module;
          if (typeof module !== 'string' || module === '') return;
          const path = resolve(dirname(file), module);
          if (!existsSync(path)) add([...tpath, 'transform', j, 'custom', 'module'], `table ${target}, step ${j + 1} (custom): module file not found: ${path}`);
        });
      }
    });
  }
  return problems;
}
