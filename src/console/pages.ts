/**
 * The console's replay, history, audit and alerts pages (bodies only: ./console.ts gathers what they
 * show, checks the role and wraps them in the layout). Every form is a plain HTML form first.
 */
import type { FieldChange } from '../history/history.js';
import type { Step, Timeline } from '../history/api.js';
import type { ActiveAlert } from '../observe/alerts/engine.js';
import type { ReplayJob } from '../replay/api.js';
import type { RollbackResult } from '../history/rollback.js';
import type { AuditEntry } from '../security/audit/chain.js';
import type { VerifyState } from '../verify/service.js';
import { html, Html, raw, showValue } from './html.js';

const opt = (v: string, label: string, cur: string | undefined) => html`<option value="${v}"${cur === v ? raw(' selected') : ''}>${label}</option>`;
const when = (iso: string | undefined | null) => (iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').slice(0, 19)}</time>` : '—');
const banner = (error?: string) => (error ? html`<p class="banner error" role="alert">${error}</p>` : '');

// ------------------------------------------------------------------ dead letters being read

/**
 * The dead-letter page while the topics are read for the first time (at start, in the background:
 * ADR 0037): how far it is, and the page asks again every second (a plain link without script).
 */
export function dlqLoading(url: URL, st: { read: number; total: number }, more = false): Html {
  const again = url.pathname + url.search;
  const n = (x: number) => x.toLocaleString('en-US');
  const so = st.total > 0 ? `: ${n(st.read)} of ${n(st.total)} so far` : '';
  return html`${more ? '' : html`<h1>Dead letters</h1>`}
<div id="dlq-loading" hx-get="${again}" hx-trigger="load delay:1s" hx-select="#main" hx-target="#main" hx-swap="outerHTML">
<p class="banner" role="status">${more ? `Reading ${st.total > 0 ? `${n(st.total)} ` : ''}new dead letters from Kafka${so} (listed below as they are read). This page updates when the reading is done.` : `Reading the dead letters from Kafka${so}. This page shows them when the reading is done.`}</p>
<p><a href="${again}">Refresh</a></p>
</div>`;
}

// ------------------------------------------------------------------ replay

export interface ReplayForm {
  csrf: string;
  pipelines: string[];
  pipeline: string | undefined;
  tables: string[];
  canAct: boolean;
  available: boolean;
  jobs: ReplayJob[];
  error?: string;
  form?: URLSearchParams;
}

export function replayBody(f: ReplayForm): Html {
  const v = (k: string, d = '') => f.form?.get(k) ?? d;
  const dry = f.form ? f.form.get('dryRun') === 'on' : true;
  const form = f.canAct && f.available && f.pipeline
    ? html`<form method="post" action="/console/pipelines/${encodeURIComponent(f.pipeline)}/replays" class="card" aria-label="Replay ${f.pipeline}">
  <input type="hidden" name="_csrf" value="${f.csrf}">
  <div class="filters">
    <div><label for="r-from">From</label><input id="r-from" name="from" required value="${v('from', 'beginning')}" aria-describedby="r-help"></div>
    <div><label for="r-to">To (inclusive, optional)</label><input id="r-to" name="to" value="${v('to')}" placeholder="now" aria-describedby="r-help"></div>
    <div><label for="r-table">Table</label><select id="r-table" name="table">${opt('', 'all tables', v('table'))}${f.tables.map((t) => opt(t, t, v('table')))}</select></div>
    <div><input type="checkbox" id="r-dry" name="dryRun"${dry ? raw(' checked') : ''}> <label for="r-dry" class="inline-label">Dry run (write nothing)</label></div>
  </div>
  <p id="r-help" class="help">From and to: an ISO time with a zone (2026-12-06T10:00:00Z), an offset of every partition (digits), or <code>beginning</code>. Already-applied changes are no-ops; a change the target lost is written again. The live consumer group is not touched.</p>
  <button type="submit" class="primary">Start replay</button>
</form>`
    : !f.available ? html`<p class="banner warn" role="note">This process does not run the sink stage: replay on the process that does.</p>`
    : !f.canAct ? html`<p class="help">Starting a replay needs the operator role.</p>` : '';
  return html`<h1>Replay</h1>
${banner(f.error)}
<form method="get" action="/console/replay" class="filters" aria-label="Choose the pipeline">
  <div><label for="r-pipeline">Pipeline</label><select id="r-pipeline" name="pipeline">${f.pipelines.map((n) => opt(n, n, f.pipeline))}</select></div>
  <div><button type="submit">Choose</button></div>
</form>
${form}
<h2 id="recent">Recent replays</h2>
${f.jobs.length === 0 ? html`<p>No replay was started in this process yet.</p>` : html`<div class="scroll" role="region" aria-labelledby="recent" tabindex="0"><table>
<thead><tr><th scope="col">Replay</th><th scope="col">Pipeline</th><th scope="col">Range</th><th scope="col">Dry run</th><th scope="col">By</th><th scope="col">Started (UTC)</th><th scope="col">Status</th></tr></thead>
<tbody>${f.jobs.map((j) => html`<tr><td><a href="/console/pipelines/${encodeURIComponent(j.pipeline)}/replays/${encodeURIComponent(j.id)}">${j.id}</a></td><td>${j.pipeline}</td><td>${j.from} → ${j.to ?? 'now'}${j.table ? html`<br><small>${j.table}</small>` : ''}</td><td>${j.dryRun ? 'yes' : 'no'}</td><td>${j.by}</td><td>${when(j.startedAt)}</td><td>${j.status}</td></tr>`)}</tbody>
</table></div>`}`;
}

/** A replay's progress (polled every second while it runs) and, once done, its summary. */
export function replayJob(j: ReplayJob): Html {
  const self = `/console/pipelines/${encodeURIComponent(j.pipeline)}/replays/${encodeURIComponent(j.id)}?part=1`;
  const pct = j.progress.total === 0 ? (j.status === 'running' ? 0 : 100) : Math.floor((j.progress.read / j.progress.total) * 100);
  const s = j.summary;
  const n = (x: number) => x.toLocaleString('en-US');
  return html`<div id="replay-job"${j.status === 'running' ? raw(` hx-get="${self}" hx-trigger="every 1s" hx-swap="outerHTML"`) : ''}>
<dl class="facts">
  <dt>Pipeline</dt><dd>${j.pipeline}</dd>
  <dt>Range</dt><dd>${j.from} → ${j.to ?? 'the end when it started'}</dd>
  <dt>Table</dt><dd>${j.table ?? 'all tables'}</dd>
  <dt>Dry run</dt><dd>${j.dryRun ? 'yes: nothing is written' : 'no'}</dd>
  <dt>Started</dt><dd>${when(j.startedAt)} by ${j.by}</dd>
  <dt>Status</dt><dd id="replay-status">${j.status}</dd>
</dl>
<p><label for="replay-progress">Progress</label> <progress id="replay-progress" max="100" value="${pct}">${pct}%</progress> <span id="replay-count">${n(j.progress.read)} of ${n(j.progress.total)} changes read (${pct}%)</span></p>
${j.error ? html`<p class="banner error" role="alert">${j.error}</p>` : ''}
${s ? html`<section aria-labelledby="summary"><h2 id="summary">Summary${s.dryRun ? ' (dry run: nothing was written)' : ''}</h2>
<p role="status">Replay of ${s.pipeline} done in ${(s.durationMs / 1000).toFixed(1)} s.</p>
<table class="summary"><tbody>
<tr><th scope="row">Read</th><td class="num">${n(s.read)}</td></tr>
<tr><th scope="row">Applied${s.dryRun ? ' (would be)' : ''}</th><td class="num">${n(s.applied)}${s.repaired ? ` (${n(s.repaired)} the target had lost)` : ''}</td></tr>
<tr><th scope="row">Skipped, unchanged</th><td class="num">${n(s.skippedUnchanged)}</td></tr>
<tr><th scope="row">Skipped, already newer</th><td class="num">${n(s.skippedStale)}</td></tr>
<tr><th scope="row">Conflicts</th><td class="num">${n(s.conflicts)}</td></tr>
<tr><th scope="row">Dead-lettered</th><td class="num">${n(s.deadLettered)}${s.invalid ? ` (${n(s.invalid)} invalid)` : ''}${s.parked ? ` (${n(s.parked)} parked)` : ''}</td></tr>
</tbody></table></section>` : ''}
</div>`;
}

// ------------------------------------------------------------------ history

export interface HistoryForm {
  pipelines: string[];
  tables: string[];
  q: URLSearchParams;
  timeline?: Timeline;
  asof?: { table: string; at: string; since: string; rows: { key: string; row: Record<string, unknown> }[]; shown: number };
  error?: string;
  masked: boolean;
  /** Admins where the pipeline's sink runs: the rollback form, and a dry run's preview or a rollback's result. */
  rollback?: RollbackView;
}

export interface RollbackView {
  csrf: string;
  /** What was asked (kept in the form; a preview's confirm sends the same). */
  form: { to?: string; table?: string; key?: string; pause?: boolean };
  result?: RollbackResult;
  error?: string;
}

/** The rollback form (a dry run first), then its preview with the confirm form, or the result. */
function rollbackSection(pipeline: string, tables: string[], r: RollbackView): Html {
  const f = r.form;
  const action = `/console/pipelines/${encodeURIComponent(pipeline)}/rollback`;
  const res = r.result;
  const shown = 200;
  const hidden = (confirm: boolean) => html`<input type="hidden" name="_csrf" value="${r.csrf}">
  <input type="hidden" name="to" value="${f.to ?? ''}">${f.table ? html`<input type="hidden" name="table" value="${f.table}">` : ''}${f.key ? html`<input type="hidden" name="key" value="${f.key}">` : ''}${f.pause ? html`<input type="hidden" name="pause" value="on">` : ''}${confirm ? html`<input type="hidden" name="confirm" value="yes">` : ''}`;
  let outcome: Html | string = '';
  if (res) {
    const keys = res.tables.flatMap((t) => t.changes);
    const head = res.dryRun
      ? html`<h3 id="rollback-preview">Preview (dry run: nothing written): ${res.changes} key(s) would change</h3>`
      : html`<p class="banner ok" role="status">Rolled back ${pipeline} to ${when(res.to)}: ${res.written} of ${res.changes} key(s) written.${res.held ? ` The pipeline is paused: changes wait in Kafka until it is resumed (Pipelines page).` : res.written > 0 ? ' The next source change of a rolled-back key applies again.' : ''}</p>`;
    outcome = html`<section aria-label="${res.dryRun ? 'Rollback preview' : 'Rollback result'}">
${head}
<ul class="plain">${res.tables.map((t) => html`<li><strong>${t.table}</strong>: ${t.examined} key(s) changed since, ${t.upserts} to upsert, ${t.deletes} to delete${res.dryRun ? '' : `, ${t.written} written`} (history from ${when(t.historySince)})${t.parked.length ? html`<br><span class="err">Left alone, parked behind an open conflict (settle it first): ${t.parked.join(', ')}</span>` : ''}${t.failed.length ? html`<br><span class="err">Not written (dead-lettered): ${t.failed.join(', ')}</span>` : ''}</li>`)}</ul>
${keys.length > 0 ? html`<div class="scroll" role="region" aria-label="Keys the rollback ${res.dryRun ? 'would change' : 'changed'}" tabindex="0"><table class="rollback">
<thead><tr><th scope="col">Table</th><th scope="col">Key</th><th scope="col">Action</th><th scope="col">Field</th><th scope="col">Now</th><th scope="col">After the rollback</th></tr></thead>
<tbody>${keys.slice(0, shown).map((c) => {
      const d = c.diff.length > 0 ? c.diff : [{ field: '—', from: undefined, to: undefined }];
      return d.map((x, i) => html`<tr>${i === 0 ? html`<td rowspan="${d.length}">${c.table}</td><th scope="row" rowspan="${d.length}"><code>${c.key}</code>${c.current === null ? html`<br><small>no row now</small>` : ''}</th><td rowspan="${d.length}">${c.action}</td>` : ''}<td>${x.field}</td><td>${x.from === undefined ? '∅' : showValue(x.from)}</td><td>${x.to === undefined ? '∅' : showValue(x.to)}</td></tr>`);
    })}</tbody></table></div>${keys.length > shown ? html`<p class="help">The first ${shown} keys are shown; <code>syncline rollback --dry-run</code> lists them all.</p>` : ''}` : ''}
${res.dryRun ? (res.changes > 0 ? html`<form method="post" action="${action}" class="row" aria-label="Confirm the rollback">
  ${hidden(true)}
  <button type="submit" class="danger">Roll back ${res.changes} key(s)</button> <a href="/console/history?pipeline=${encodeURIComponent(pipeline)}">Cancel</a>
</form>
<p class="help">Confirming runs the same rollback for real: the target rows are read again then, so a key changed since this preview is put back from its state at that moment.</p>` : html`<p class="banner ok" role="status">Nothing to roll back: the target already holds these rows as they were then.</p>`) : ''}
</section>`;
  }
  return html`<section aria-labelledby="rollback"><h2 id="rollback">Roll back ${pipeline}</h2>
${banner(r.error)}
<form method="post" action="${action}" class="filters" aria-label="Roll back ${pipeline}">
  <input type="hidden" name="_csrf" value="${r.csrf}">
  <div><label for="rb-to">Roll back to (ISO time)</label><input id="rb-to" name="to" required value="${f.to ?? ''}" placeholder="2026-12-06T10:00:00Z" aria-describedby="rb-help"></div>
  <div><label for="rb-table">Table (optional)</label><input id="rb-table" name="table" list="history-tables" value="${f.table ?? ''}" placeholder="all tables with history"></div>
  <div><label for="rb-key">Key (optional)</label><input id="rb-key" name="key" value="${f.key ?? ''}" placeholder="42"></div>
  <div><input type="checkbox" id="rb-pause" name="pause"${f.pause ? raw(' checked') : ''}> <label for="rb-pause" class="inline-label">Pause the pipeline</label></div>
  <div><button type="submit">Preview rollback</button></div>
</form>
<p id="rb-help" class="help">Puts the target's rows back as they were at that instant (from the change history), written through the pipeline. The preview is a dry run: it shows what would change and writes nothing; you confirm it after. Pause holds the pipeline (until Resume) so later source changes do not overwrite the rolled-back rows. Admins only; audited as <code>rollback</code>. Tables with history: ${tables.join(', ') || '—'}.</p>
${outcome}
</section>`;
}

const diffRows = (d: FieldChange[]) => d.map((c) => html`<tr><th scope="row">${c.field}</th><td>${c.from === undefined ? '∅' : showValue(c.from)}</td><td>${c.to === undefined ? '∅' : showValue(c.to)}</td></tr>`);

function step(s: Step, i: number): Html {
  const how = [s.decision, s.strategy, s.by ? `by ${s.by}` : ''].filter(Boolean).join(', ');
  return html`<li${s.changed ? '' : raw(' class="unchanged"')}>
<h3 id="step-${i}">${when(s.appliedAt)} · ${s.op}${how ? ` · ${how}` : ''}${s.changed ? '' : ' (no change to the row)'}</h3>
<p class="help">Position <code>${s.position}</code>${s.commitAt ? html`, committed at the source ${when(s.commitAt)}` : ''}</p>
${s.diff.length > 0 ? html`<div class="scroll" role="region" aria-labelledby="step-${i}" tabindex="0"><table class="diff"><thead><tr><th scope="col">Field</th><th scope="col">Before</th><th scope="col">After</th></tr></thead><tbody>${diffRows(s.diff)}</tbody></table></div>` : ''}
</li>`;
}

export function historyBody(f: HistoryForm): Html {
  const q = f.q;
  const pipelineSelect = (id: string) => html`<select id="${id}" name="pipeline">${f.pipelines.map((n) => opt(n, n, q.get('pipeline') ?? undefined))}</select>`;
  const t = f.timeline;
  const a = f.asof;
  const cols = a ? [...new Set(a.rows.slice(0, a.shown).flatMap((r) => Object.keys(r.row)))] : [];
  return html`<h1>History</h1>
${banner(f.error)}
<datalist id="history-tables">${f.tables.map((x) => html`<option value="${x}">`)}</datalist>
<form method="get" action="/console/history" class="filters" aria-label="Timeline of a key">
  <div><label for="h-pipeline">Pipeline</label>${pipelineSelect('h-pipeline')}</div>
  <div><label for="h-table">Table</label><input id="h-table" name="table" list="history-tables" required value="${q.get('table') ?? f.tables[0] ?? ''}"></div>
  <div><label for="h-key">Key</label><input id="h-key" name="key" required value="${q.get('key') ?? ''}" placeholder="42"></div>
  <div><button type="submit">Show timeline</button></div>
</form>
<form method="get" action="/console/history" class="filters" aria-label="Table as of an instant">
  <div><label for="a-pipeline">Pipeline</label>${pipelineSelect('a-pipeline')}</div>
  <div><label for="a-table">Table</label><input id="a-table" name="table" list="history-tables" required value="${q.get('table') ?? f.tables[0] ?? ''}"></div>
  <div><label for="a-at">As of (ISO time)</label><input id="a-at" name="asof" required value="${q.get('asof') ?? ''}" placeholder="2026-12-06T10:00:00Z"></div>
  <div><button type="submit">Show table</button></div>
</form>
${f.masked ? html`<p class="help">Sensitive values are masked (***); an admin sees them.</p>` : ''}
${t ? html`<section aria-labelledby="timeline"><h2 id="timeline">Timeline of ${t.table} key <code>${t.key}</code> (${t.steps.length} step(s), oldest first)</h2>
${t.steps.length === 0 ? html`<p>No change of this key is in the history.</p>` : html`<ol class="timeline">${t.steps.map(step)}</ol>`}</section>` : ''}
${a ? html`<section aria-labelledby="asof"><h2 id="asof">${a.table} as of ${when(a.at)}: ${a.rows.length} row(s)</h2>
<p class="help">Rebuilt from the history (which reaches back to ${when(a.since)}).${a.rows.length > a.shown ? ` The first ${a.shown} rows are shown; syncline history asof --out FILE writes them all.` : ''}</p>
<div class="scroll" role="region" aria-labelledby="asof" tabindex="0"><table><thead><tr><th scope="col">Key</th>${cols.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
<tbody>${a.rows.slice(0, a.shown).map((r) => html`<tr><th scope="row"><code>${r.key}</code></th>${cols.map((c) => html`<td>${showValue(r.row[c])}</td>`)}</tr>`)}</tbody></table></div></section>` : ''}
${f.rollback && q.get('pipeline') ? rollbackSection(q.get('pipeline')!, f.tables, f.rollback) : ''}`;
}

// ------------------------------------------------------------------ audit

export interface AuditForm {
  q: URLSearchParams;
  entries?: AuditEntry[];
  error?: string;
  verifications: { pipeline: string; state?: VerifyState }[];
}

export function auditBody(f: AuditForm): Html {
  const q = f.q;
  const e = f.entries;
  return html`<h1>Audit</h1>
${banner(f.error)}
<form method="get" action="/console/audit" class="filters" role="search" aria-label="Filter audit entries">
  <div><label for="au-actor">Actor</label><input id="au-actor" name="actor" value="${q.get('actor') ?? ''}" placeholder="token:olivia"></div>
  <div><label for="au-action">Action</label><input id="au-action" name="action" value="${q.get('action') ?? ''}" placeholder="dlq.*" aria-describedby="au-help"></div>
  <div><label for="au-since">Since</label><input id="au-since" name="since" value="${q.get('since') ?? ''}" placeholder="24h" aria-describedby="au-help"></div>
  <div><label for="au-limit">At most</label><input id="au-limit" name="limit" type="number" min="1" max="1000" value="${q.get('limit') ?? '100'}"></div>
  <div><button type="submit">Filter</button></div>
</form>
<p id="au-help" class="help">Action: exact, or a prefix with a trailing * (dlq.*). Since: an ISO time or a duration back from now (30m, 24h, 7d). The chain's integrity: <code>syncline audit verify</code>.</p>
${e ? html`<p id="audit-count">${e.length === 0 ? 'No audit entries match.' : `${e.length} entr${e.length === 1 ? 'y' : 'ies'}, newest first.`}</p>
${e.length > 0 ? html`<div class="scroll" role="region" aria-labelledby="audit-count" tabindex="0"><table class="audit">
<thead><tr><th scope="col">#</th><th scope="col">Time (UTC)</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Object</th><th scope="col">Details</th></tr></thead>
<tbody>${e.map((x) => html`<tr><td class="num">${x.seq}</td><td>${when(x.at)}</td><td>${x.actor}${x.role ? html`<br><small>${x.role}</small>` : ''}</td><td><code>${x.action}</code></td><td>${x.object ?? '—'}</td><td class="details">${Object.keys(x.details).length > 0 ? JSON.stringify(x.details) : '—'}</td></tr>`)}</tbody>
</table></div>` : ''}` : ''}
<h2 id="verify">Last verification</h2>
${f.verifications.length === 0 ? html`<p>No pipeline is verified by this process (verification runs where the capture runs).</p>` : html`<div class="scroll" role="region" aria-labelledby="verify" tabindex="0"><table>
<thead><tr><th scope="col">Pipeline</th><th scope="col">Status</th><th scope="col">Started (UTC)</th><th scope="col">Ended</th><th scope="col">Differences</th><th scope="col">Tables</th></tr></thead>
<tbody>${f.verifications.map(({ pipeline, state: v }) => html`<tr><th scope="row">${pipeline}</th>${v ? html`<td>${v.status} (${v.trigger})${v.error ? html`<br><small class="err">${v.error}</small>` : ''}</td><td>${when(v.startedAt)}</td><td>${when(v.endedAt)}</td><td class="num">${v.result ? v.result.mismatches : '—'}${v.result?.repair ? html`<br><small>repaired</small>` : ''}</td><td>${v.result ? v.result.tables.map((t) => `${t.table}: ${t.sourceRows} / ${t.targetRows} rows, ${t.diffs.length} diff(s)`).join('; ') : '—'}</td>` : html`<td colspan="5">not verified by this process yet (syncline verify, or POST /api/pipelines/${pipeline}/verify)</td>`}</tr>`)}</tbody>
</table></div>`}`;
}

// ------------------------------------------------------------------ alerts

export function alertsBody(a: { rules: number; alerts: ActiveAlert[] } | undefined): Html {
  if (!a) return html`<h1>Alerts</h1><p>No alert rules are configured in this process (config <code>alerts.rules</code>; see docs/alerts.md).</p>`;
  const list = [...a.alerts].sort((x, y) => (x.state === y.state ? x.activeAt.localeCompare(y.activeAt) : x.state === 'firing' ? -1 : 1));
  const firing = list.filter((x) => x.state === 'firing').length;
  return html`<h1>Alerts</h1>
<div id="alerts" hx-get="/console/alerts" hx-select="#alerts" hx-trigger="every 5s" hx-swap="outerHTML">
<p id="alerts-count">${firing} firing, ${list.length - firing} pending, of ${a.rules} rule(s) evaluated here.</p>
${list.length === 0 ? html`<p class="banner ok" role="status">No alert is pending or firing.</p>` : html`<div class="scroll" role="region" aria-labelledby="alerts-count" tabindex="0"><table>
<thead><tr><th scope="col">Alert</th><th scope="col">State</th><th scope="col">Severity</th><th scope="col">Summary</th><th scope="col">Labels</th><th scope="col">Active since (UTC)</th><th scope="col">Firing since</th></tr></thead>
<tbody>${list.map((x) => html`<tr><th scope="row">${x.name}</th><td><span class="state state-${x.state === 'firing' ? 'failed' : 'starting'}">${x.state}</span></td><td>${x.severity}</td><td>${x.summary}</td><td><small>${Object.entries(x.labels).map(([k, v]) => `${k}=${v}`).join(', ')}</small></td><td>${when(x.activeAt)}</td><td>${when(x.firedAt)}</td></tr>`)}</tbody>
</table></div>`}
</div>`;
}
