/**
 * Masking of free text: error messages of targets and sources as they reach log lines, dead-letter
 * headers, /health, reports and alert texts (src/core/redact.ts is the choke point that calls it).
 *
 * Values appear in error texts in known shapes; each is masked when its column is sensitive under
 * the one policy (./policy.ts: tables[].mask, tables[].encrypt, validation.mask, masking.patterns):
 *   PostgreSQL   Key (email)=(alice@example.com) already exists.      → Key (email)=(***) …
 *                Failing row contains (1, alice@…, …).                 → Failing row contains (***).  (always: a whole row)
 *   MariaDB      Duplicate entry 'alice@…' for key 'email'             → Duplicate entry '***' …  (key named by a sensitive
 *                                                                        column, or the table has listed sensitive columns)
 *                Incorrect integer value: 'x' for column `db`.`t`.`c`  → '***' when c is sensitive
 *   JSON         "email": "alice@…" (an HTTP target's response body)   → "email": "***"
 * and, when the record the text is about is known (`row`), every value of its sensitive columns
 * (3+ characters) wherever it occurs. Without a table, a column counts as sensitive when it is in
 * any table's list (or matches a pattern).
 */
import type { Row, Value } from '../../core/envelope.js';
import { setRedactor } from '../../core/redact.js';
import { MASK, maskPolicy, type MaskingConfigView, type MaskPolicy } from './policy.js';

const unquote = (c: string) => c.trim().replace(/^["`']|["`']$/g, '');

export function maskErrorText(text: string, policy: MaskPolicy, table?: string, row?: Row | null): string {
  const sensitive = (column: string) => (table !== undefined ? policy.sensitive(column, table) : policy.sensitiveAnywhere(column));
  let out = text;
  if (out.includes(')=(')) {
    // PostgreSQL DETAIL: Key (a, b)=(x, y) already exists / is not present in table … / conflicts with existing key (…)=(…)
    out = out.replace(/\(((?:"[^"]*"|[A-Za-z_][\w$]*)(?:, (?:"[^"]*"|[A-Za-z_][\w$]*))*)\)=\(([\s\S]*?)\)(?=\s+(?:already exists|is not present|is still referenced|conflicts with)|\.?\s*$|\.\s)/g, (m, cols: string, _v: string) =>
      cols.split(',').some((c) => sensitive(unquote(c))) ? `(${cols})=(${MASK})` : m);
  }
  if (out.includes('Failing row contains')) out = out.replace(/Failing row contains \(([\s\S]*?)\)(?=\.?\s*$|\.\s|\s+—)/g, `Failing row contains (${MASK})`);
  if (out.includes('Duplicate entry')) {
    out = out.replace(/Duplicate entry '((?:[^'\\]|\\.|'')*)' for key '([^']*)'/g, (m, _v: string, key: string) => {
      const name = key.slice(key.lastIndexOf('.') + 1);
      if (name === 'PRIMARY') return m;
      return sensitive(name) || (table !== undefined && policy.hasSensitive(table)) || (table === undefined && policy.anyListed()) ? `Duplicate entry '${MASK}' for key '${key}'` : m;
    });
  }
  if (out.includes(' for column ')) {
    out = out.replace(/'((?:[^'\\]|\\.|'')*)' for column ((?:[`'"]?[\w$]+[`'"]?\.)*[`'"]?([\w$]+)[`'"]?)/g, (m, _v: string, col: string, name: string) => (sensitive(name) ? `'${MASK}' for column ${col}` : m));
  }
  if (out.includes('"')) {
    out = out.replace(/"([A-Za-z_][\w$-]*)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)/g, (m, k: string, sep: string) => (sensitive(k) ? `"${k}"${sep}"${MASK}"` : m));
  }
  if (row) {
    const values: Value[] = [];
    for (const [c, v] of Object.entries(row)) if (v !== null && policy.sensitive(c, table)) values.push(v);
    if (values.length > 0) out = policy.maskText(out, values);
  }
  return out;
}

/** Install the config's masking policy as the process's redactor (src/core/redact.ts). */
export function installMasking(config: MaskingConfigView): MaskPolicy {
  const policy = maskPolicy(config);
  setRedactor((text, table, row) => maskErrorText(text, policy, table, row));
  return policy;
}
