/**
 * Config checks shared by the sources whose tables are declared in the config, not read from a
 * database catalog (file, RabbitMQ, kafka-topic, HTTP): each table (or topic) listed once, and
 * every key column among the declared columns. Used from the sources' zod specs (superRefine).
 */
import type { z } from 'zod';

export interface DeclaredTable {
  key: string[];
  columns: Record<string, unknown>;
}

/**
 * `items[i][field]` names the entry (table or topic) at `path`: a name listed twice, and a key column
 * not in the entry's columns, are config issues at their exact path.
 */
export function declaredTableIssues<T extends DeclaredTable>(items: T[], path: string, field: keyof T & string, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  items.forEach((t, i) => {
    const name = String(t[field]);
    if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [path, i, field], message: `${field} ${name} is listed twice` });
    seen.add(name);
    const cols = Object.keys(t.columns);
    t.key.forEach((k, j) => {
      if (!cols.includes(k)) ctx.addIssue({ code: 'custom', path: [path, i, 'key', j], message: `key column ${k} is not in columns (${cols.join(', ')})` });
    });
  });
}
