/**
 * Config reload (SIGHUP, or POST /api/reload, of a running `syncline start|capture|process|sink`):
 * what a new config changes, and whether the running process can take it.
 *
 * What a reload applies: API tokens (api.tokens: added, revoked, another role or pipelines; the
 * access control takes the new list at once, ApiAccess.setTokens) and tables added to a pipeline's `tables`. The Runtime adds them to the running
 * stages (Runtime.addTablesLive, no stage stops): the capture adds the table to its source (the
 * publication) while it streams and backfills it (src/capture/backfill.ts); the processor's consumer
 * takes the new change topic from its beginning (ConsumerStage.addTopics: one rejoin of its group).
 * When the source cannot take tables while streaming, or an added table has validation rules, the
 * Runtime restarts that pipeline's stages inside the process instead (the others run on untouched;
 * the start of a capture backfills tables added since its last start). Anything else that differs (a removed or
 * changed table, another source or target, a new pipeline, other sections) is refused, naming what
 * differs: it needs a restart. A config the loader refuses is refused with the loader's error. A
 * refused reload changes nothing: the old config keeps running.
 */
import type { ApiConfig, PipelineConfig, SynclineConfig, TableConfig } from './core/config/schema.js';

export interface ReloadPlan {
  /** Pipelines (running in this process) that gain tables. */
  changes: { pipeline: string; added: TableConfig[]; next: PipelineConfig }[];
  /** API tokens that differ (api.tokens): the new list, and which names were added, removed or changed (role, pipelines, hash). */
  tokens?: { next: ApiConfig['tokens']; added: string[]; removed: string[]; changed: string[] };
}

/** Whether the API asks for credentials under this config (as src/security/access/access.ts decides it). */
function authRequired(api: ApiConfig | undefined): boolean {
  if (!api) return false;
  return (api.auth ?? (api.tokens.length > 0 || api.oidc !== undefined ? 'required' : 'none')) === 'required';
}

/** The token changes between two configs' `api.tokens` (undefined: the same). */
function tokenChanges(old: ApiConfig | undefined, next: ApiConfig | undefined): ReloadPlan['tokens'] {
  const a = old?.tokens ?? [];
  const b = next?.tokens ?? [];
  if (json(a) === json(b)) return undefined;
  const names = (l: typeof a) => new Map(l.map((t) => [t.name, t]));
  const ma = names(a);
  const mb = names(b);
  return {
    next: b,
    added: [...mb.keys()].filter((n) => !ma.has(n)),
    removed: [...ma.keys()].filter((n) => !mb.has(n)),
    changed: [...mb.keys()].filter((n) => ma.has(n) && json(ma.get(n)) !== json(mb.get(n))),
  };
}

export class ReloadRefused extends Error {
  readonly code = 'RELOAD_REFUSED';
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

/** What differs between `old` and `next` (dotted paths), tables of pipelines apart. */
function differences(old: unknown, next: unknown, path: string, out: string[]): void {
  if (json(old) === json(next)) return;
  if (old && next && typeof old === 'object' && typeof next === 'object' && !Array.isArray(old) && !Array.isArray(next)) {
    const keys = new Set([...Object.keys(old), ...Object.keys(next)]);
    for (const k of keys) differences((old as Record<string, unknown>)[k], (next as Record<string, unknown>)[k], path ? `${path}.${k}` : k, out);
    return;
  }
  out.push(path || '(the whole config)');
}

/** The reload of `old` into `next`: throws ReloadRefused naming what a reload cannot apply. */
export function planReload(old: SynclineConfig, next: SynclineConfig): ReloadPlan {
  const refused: string[] = [];
  const { pipelines: oldPipes, ...oldRest } = old;
  const { pipelines: nextPipes, ...nextRest } = next;
  // API tokens (revoked, added, another role or pipelines) apply at once; whether auth is required at all needs a restart.
  const tokens = tokenChanges(old.api, next.api);
  if (tokens && authRequired(old.api) !== authRequired(next.api)) refused.push(`api.auth (the token change turns authentication ${authRequired(next.api) ? 'on' : 'off'})`);
  const strip = (c: typeof oldRest) => (c.api ? { ...c, api: { ...c.api, tokens: [] } } : c);
  differences(strip(oldRest), strip(nextRest), '', refused);
  const changes: ReloadPlan['changes'] = [];
  for (const name of new Set([...Object.keys(oldPipes), ...Object.keys(nextPipes)])) {
    const a = oldPipes[name];
    const b = nextPipes[name];
    if (!a || !b) {
      refused.push(`pipelines.${name} (${a ? 'removed' : 'added'})`);
      continue;
    }
    const { tables: ta, ...ra } = a;
    const { tables: tb, ...rb } = b;
    differences(ra, rb, `pipelines.${name}`, refused);
    ta.forEach((t, i) => {
      const same = tb.find((x) => x.source === t.source);
      if (!same) refused.push(`pipelines.${name}.tables[${i}] (${t.source} removed)`);
      else if (json(same) !== json(t)) refused.push(`pipelines.${name}.tables[${i}] (${t.source} changed)`);
    });
    const added = tb.filter((t) => !ta.some((x) => x.source === t.source));
    if (added.length === 0) continue;
    // Scheduled/manual runs and realtime windows (src/sync/) hold per-pipeline state a restart of its stages would duplicate.
    if ((b.mode !== undefined && b.mode !== 'realtime') || b.windows !== undefined) {
      refused.push(`pipelines.${name}.tables (tables added to a ${b.mode !== undefined && b.mode !== 'realtime' ? `${b.mode} pipeline` : 'pipeline with windows'})`);
      continue;
    }
    changes.push({ pipeline: name, added, next: b });
  }
  if (refused.length > 0) {
    throw new ReloadRefused(`reload refused: a reload applies tables added to a pipeline and changed API tokens (api.tokens); these changes need a restart: ${refused.join(', ')}. The running config stays as it was`);
  }
  return { changes, ...(tokens ? { tokens } : {}) };
}
