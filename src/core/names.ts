/**
 * Names: one rule for each kind, and how a name is written where another system's rules are
 * narrower. Every function here is pure; the rules are documented in README.md ("Names").
 *
 * Table names (config `tables[].source` and `.target`): `schema.table`. Each part is either
 *  - bare: ASCII letters, digits, `_` and `$`, not starting with a digit, taken exactly as written
 *    (no case folding, unlike SQL: `public.Users` is the table "Users"), or
 *  - quoted: between double quotes, any characters, a double quote written twice:
 *    `"Quoted"" . Schema"."Table"` is schema `Quoted" . Schema`, table `Table`.
 * A part is at most 63 bytes (UTF-8), PostgreSQL's limit. The canonical form writes each part bare
 * when it can and quoted otherwise (`"public"."users"` → `public.users`); it is the table's one
 * spelling everywhere inside syncline: SinkRecord.table, logs, metric labels, dead-letter headers
 * (syncline.table), Redis keys, `--table` options. It parses back to the same parts, and it never
 * contains an unquoted `:` (so a Redis key `…:v:<table>:<key>` splits back unambiguously).
 *
 * Kafka topic names allow [A-Za-z0-9._-] only: topicPart() keeps [A-Za-z0-9_] and writes every other
 * character as `-` and the two lower-case hex digits of each of its UTF-8 bytes (`.` → `-2e`,
 * space → `-20`, `"` → `-22`, `-` → `-2d`, `é` → `-c3-a9`). It is injective (`-` only ever starts
 * an escape and `.` never appears), and plain names are unchanged, so existing topics keep their
 * names: schema `Quoted" . Schema`, table `Table` → `<prefix>.cdc.Quoted-22-20-2e-20Schema.Table`.
 * Kafka also refuses two topics that differ only in `.` versus `_` (`a.b_c` and `a_b.c`); the config
 * check refuses such a pair of tables up front (kafkaCollisionKey).
 *
 * Syncline names (pipelines, replication slots, publications): lower-case ASCII letters, digits,
 * `_` and `-`, starting with a letter, digit or `_`, at most 63 characters (NAME_RE). PostgreSQL
 * allows only lower-case letters, digits and `_` in a slot name: the slot is created as
 * pgSlotName(name), `-` written as `_` (the config check refuses two pipelines whose slots would then
 * be one).
 */

/** Pipeline, slot and publication names. */
export const NAME_RE = /^[a-z0-9_][a-z0-9_-]{0,62}$/;
export const NAME_RULE = 'lower-case letters, digits, _ and -, starting with a letter, digit or _, at most 63 characters';

/** A bare part of a table name. */
const BARE = /^[A-Za-z_][A-Za-z0-9_$]*$/;
/** PostgreSQL's NAMEDATALEN - 1. */
const MAX_IDENT_BYTES = 63;
/** Kafka's limit on a topic name. */
export const MAX_TOPIC_LENGTH = 249;

export interface TableName {
  schema: string;
  table: string;
}

export class NameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NameError';
  }
}

/**
 * Parse `schema.table` (parts bare or double-quoted, see above). Throws NameError with the reason
 * and the position (1-based) where the text stops making sense.
 */
export function parseTableName(text: string): TableName {
  const parts: string[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new NameError(`${why} (write 'schema.table'; quote a part that holds anything but letters, digits, _ and $: "My Schema"."Table", a " inside quotes written twice)`);
  };
  for (;;) {
    const start = i;
    let part: string;
    if (text[i] === '"') {
      part = '';
      i++;
      for (;;) {
        if (i >= text.length) fail(`unterminated quoted name starting at position ${start + 1}`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i++];
      }
      if (part === '') fail(`empty quoted name at position ${start + 1}`);
    } else {
      while (i < text.length && text[i] !== '.') i++;
      part = text.slice(start, i);
      if (part === '') fail(start === 0 ? 'missing schema' : `missing name after the dot at position ${start}`);
      if (!BARE.test(part)) {
        const bad = [...part].find((c) => !/[A-Za-z0-9_$]/.test(c));
        fail(bad !== undefined ? `'${part}' must be quoted: it holds ${JSON.stringify(bad)}` : `'${part}' must be quoted: it starts with a digit`);
      }
    }
    if (Buffer.byteLength(part, 'utf8') > MAX_IDENT_BYTES) fail(`'${part}' is longer than ${MAX_IDENT_BYTES} bytes (PostgreSQL would truncate it)`);
    parts.push(part);
    if (i >= text.length) break;
    if (text[i] !== '.') fail(`unexpected ${JSON.stringify(text[i])} at position ${i + 1} after a quoted name`);
    if (parts.length === 2) fail(`more than two parts (a third starts at position ${i + 2})`);
    i++;
    if (i >= text.length) fail('missing table after the dot');
  }
  if (parts.length !== 2) fail(`'${text}' has no schema`);
  return { schema: parts[0]!, table: parts[1]! };
}

/** One part of a table name in canonical form: bare when it can be, quoted otherwise. */
export function namePart(s: string): string {
  return BARE.test(s) ? s : '"' + s.replace(/"/g, '""') + '"';
}

/** Canonical form of a table name: `public.users`, `"Quoted"" . Schema".Table`. */
export function formatTableName(n: TableName): string {
  return namePart(n.schema) + '.' + namePart(n.table);
}

/** The canonical form of a table name as written in a config (throws NameError). */
export function canonicalTableName(text: string): string {
  return formatTableName(parseTableName(text));
}

/**
 * Whether `text` (a `--table` option: `schema.table`, or a table name without schema, bare or
 * quoted) names the table `canonical`.
 */
export function tableMatches(canonical: string, text: string): boolean {
  if (text === canonical) return true;
  let want: TableName;
  try {
    want = parseTableName(canonical);
  } catch {
    return false;
  }
  try {
    const n = parseTableName(text);
    return n.schema === want.schema && n.table === want.table;
  } catch {
    /* not schema.table: a table name alone */
  }
  const alone = text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1).replace(/""/g, '"') : text;
  return alone === want.table;
}

/** A name part as a piece of a Kafka topic name (injective; [A-Za-z0-9_] unchanged). */
export function topicPart(s: string): string {
  let out = '';
  for (const ch of s) {
    if (/^[A-Za-z0-9_]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += '-' + b.toString(16).padStart(2, '0');
  }
  return out;
}

/** Inverse of topicPart (throws NameError on text topicPart cannot produce). */
export function topicPartDecode(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const c = s[i]!;
    if (c === '-') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) throw new NameError(`bad escape at position ${i + 1} of topic part '${s}'`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else if (/^[A-Za-z0-9_]$/.test(c)) {
      bytes.push(c.charCodeAt(0));
      i++;
    } else throw new NameError(`character ${JSON.stringify(c)} cannot appear in topic part '${s}'`);
  }
  const out = Buffer.from(bytes).toString('utf8');
  if (topicPart(out) !== s) throw new NameError(`topic part '${s}' is not in canonical form`);
  return out;
}

/** `<prefix>.cdc.<schema>.<table>` with both name parts escaped by topicPart. */
export function cdcTopicName(prefix: string, schema: string, table: string): string {
  return `${prefix}.cdc.${topicPart(schema)}.${topicPart(table)}`;
}

/** Kafka treats topic names that differ only in '.' versus '_' as colliding (metric names): the key they collide on. */
export function kafkaCollisionKey(topic: string): string {
  return topic.replace(/\./g, '_');
}

/** The PostgreSQL replication slot of a configured slot name: `-` written as `_`. */
export function pgSlotName(name: string): string {
  return name.replace(/-/g, '_');
}
