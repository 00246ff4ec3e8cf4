/**
 * URL templates of the HTTP sink: {table}, {key}, {key.<column>}. Values are URL-encoded; a key
 * value is written in its text form (bigint digits, Buffer hex, Date ISO).
 */
import { poison } from '../../src/core/errors.js';
import type { Row } from '../../src/core/envelope.js';

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Why a template is not valid (for the config spec), or null. */
export function templateIssue(t: string): string | null {
  for (const m of t.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    if (name !== 'table' && name !== 'key' && !/^key\.[^.]+$/.test(name)) return `unknown placeholder {${name}} (use {table}, {key} or {key.<column>})`;
  }
  const rest = t.replace(PLACEHOLDER, '');
  if (/[{}]/.test(rest)) return 'unbalanced { or } in the URL template';
  return null;
}

/** A key value as text in a URL. */
export function keyText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

/** The template filled for one record; a {key.<column>} its key lacks is poison naming the column. */
export function fillUrl(t: string, table: string, key: Row): string {
  return t.replace(PLACEHOLDER, (_m, name: string) => {
    if (name === 'table') return encodeURIComponent(table);
    if (name === 'key') return Object.values(key).map((v) => encodeURIComponent(keyText(v))).join(',');
    const col = name.slice(4);
    if (!Object.hasOwn(key, col)) throw poison('HTTP_URL_KEY', `url template names {key.${col}}, but the key of ${table} has columns ${Object.keys(key).join(', ') || '(none)'}`);
    return encodeURIComponent(keyText(key[col]));
  });
}
