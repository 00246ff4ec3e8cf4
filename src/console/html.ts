/**
 * HTML of the console: one escaping template tag and the page layout. Every interpolated value is
 * escaped unless it is already a Html (made by this tag or raw()), so a value from a dead letter,
 * a table name or an error message cannot inject markup.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]!);

function part(v: unknown): string {
  if (v instanceof Html) return v.text;
  if (v === undefined || v === null || v === false) return '';
  if (Array.isArray(v)) return v.map(part).join('');
  return esc(String(v));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Markup made elsewhere and known to be safe (e.g. a JSON attribute escaped with esc). */
export const raw = (s: string): Html => new Html(s);

export interface PageContext {
  title: string;
  /** Which navigation entry is current. */
  nav: 'pipelines' | 'dlq' | 'replay' | 'history' | 'audit' | 'alerts' | 'login';
  actor?: string;
  role?: string;
  csrf?: string;
  /** auth none: a banner says anyone who reaches the port can act. */
  open?: boolean;
}

/** htmx: swap 4xx answers too (they carry the page with its error message), and no inline styles (CSP). */
const HTMX_CONFIG = JSON.stringify({ responseHandling: [{ code: '204', swap: false }, { code: '[2345]..', swap: true, error: false }], includeIndicatorStyles: false, allowEval: false, historyCacheSize: 0 });

export function page(c: PageContext, body: Html): string {
  const nav = (id: PageContext['nav'], href: string, label: string) => html`<a href="${href}"${c.nav === id ? raw(' aria-current="page"') : ''}>${label}</a>`;
  return '<!doctype html>\n' + html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${c.title} · syncline</title>
<meta name="htmx-config" content="${HTMX_CONFIG}">
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/htmx.min.js" defer></script>
</head>
<body${c.csrf ? raw(` hx-boost="true" hx-headers="${esc(JSON.stringify({ 'X-CSRF-Token': c.csrf }))}"`) : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">syncline</span>
  ${c.nav === 'login' ? '' : html`<nav aria-label="Main">${nav('pipelines', '/console/pipelines', 'Pipelines')}${nav('dlq', '/console/dlq', 'Dead letters')}${nav('replay', '/console/replay', 'Replay')}${nav('history', '/console/history', 'History')}${c.role !== 'viewer' ? nav('audit', '/console/audit', 'Audit') : ''}${nav('alerts', '/console/alerts', 'Alerts')}</nav>
  <span class="who">${c.actor} <span class="role">(${c.role})</span></span>
  ${c.open ? '' : html`<form method="post" action="/console/logout" class="inline"><input type="hidden" name="_csrf" value="${c.csrf}"><button type="submit" class="link">Log out</button></form>`}`}
</header>
${c.open ? html`<p class="banner warn" role="note">The API takes no credentials (api.auth none): anyone who reaches this port can act here. Configure api.tokens to require a login.</p>` : ''}
<main id="main" tabindex="-1">
${body}
</main>
</body>
</html>`.text;
}

/** A value of a row as shown in a cell: strings as they are, null as an em dash, the rest as JSON. */
export function showValue(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
