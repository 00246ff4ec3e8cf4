/**
 * The web console (/console) in a real browser (Debian's chromium driven by playwright-core)
 * against a real syncline (PostgreSQL → Kafka → PostgreSQL, manual conflicts, API tokens):
 *  - unauthenticated → the login page; a wrong token is refused; an operator's token logs in;
 *  - the pipelines page shows the pipeline with its mode, state and numbers, which move in place
 *    (polling) under a workload, with a throughput chart;
 *  - the dead-letter workbench: a conflict opened, its versions side by side with the changed
 *    fields marked, a merged row typed in and applied → the target row in PostgreSQL is the merged
 *    row; another conflict kept as the target → its parked change is released and applied;
 *  - a viewer sees no action control, and a forged POST (with the viewer's own CSRF token) is
 *    refused 403 by the server, the dead letter untouched; a POST without the token is refused too;
 *  - pause from the pipelines page: a new source change reaches Kafka but is not applied until Resume;
 *  - replay: a dry run through the form, its progress and summary; a bad bound refused on the form;
 *  - history: key 1's timeline with its diffs (masked column stays masked), the table as of now;
 *    an admin rolls key 1 back to before its merge: the dry-run preview (current → then, nothing
 *    written), then confirmed (the row in PostgreSQL is back); operators and viewers have no form
 *    and are refused 403;
 *  - alerts: one firing, one pending; an admin reveals a masked value with a reason (an operator
 *    has no button and is refused 403); the audit page lists this test's actions, filters them,
 *    and shows the last verification;
 *  - a viewer sees no pause/replay control nor the audit link, and every new action is refused 403;
 *  - keyboard only: Tab reaches the filters, the bulk action, a row's checkbox and its link, and
 *    Enter on the link opens the dead letter;
 *  - at phone width nothing overflows the page sideways.
 * Screenshots go to reports/console/test/ (the README's: npm run console:shots, bench/console-shots.ts).
 * Chromium: /usr/bin/chromium (installed here with apt-get when missing, on a fresh Debian machine).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { newToken, tokenHash } from '../src/security/access/tokens.js';
import { createDb, dropDb, PG, ROOT, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';

// The test's own screenshots (not committed; the README's come from npm run console:shots).
const SHOTS = join(ROOT, 'reports', 'console', 'test');

/** The browser: Debian's chromium, installed when this machine has none. */
function chromiumPath(): string {
  try {
    return execSync('command -v chromium', { shell: '/bin/bash', encoding: 'utf8' }).trim();
  } catch {
    const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
    execSync(`${sudo}apt-get install -y chromium || (${sudo}apt-get update && ${sudo}apt-get install -y chromium)`, { shell: '/bin/bash', stdio: 'inherit' });
    return execSync('command -v chromium', { shell: '/bin/bash', encoding: 'utf8' }).trim();
  }
}

const DDL = `create table tickets (id int primary key, title text not null, status text not null, points int not null default 1, updated_at timestamptz not null default '2026-01-01T00:00:00Z')`;

async function login(browser: Browser, base: string, token: string, next = '/console/dlq'): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  await page.goto(`${base}${next}`);
  assert.match(page.url(), /\/console\/login\?next=/, 'unauthenticated: the login page');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => u.pathname === next);
  return page;
}

test('web console: login, pipelines, pause/resume, conflicts settled in the browser, replay, history, alerts, reveal, audit, viewer refused, keyboard, phone width', async (t) => {
  const executablePath = chromiumPath();
  mkdirSync(SHOTS, { recursive: true });
  const tok = { operator: newToken(), viewer: newToken(), admin: newToken() };
  // The audit trail (and the change history, kept in the same database) for the audit and history pages.
  const keyVar = `SYNCLINE_CONSOLE_AUDIT_KEY_${process.pid}`;
  process.env[keyVar] = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const meta = `syncline_t_${Math.random().toString(16).slice(2, 10)}_meta`;
  await createDb(meta);
  const env = await testEnv([{ name: 'tickets', tables: [{ source: 'public.tickets', mask: ['updated_at'] }], conflict: { strategy: 'manual' }, history: {} }], {
    extra: ({ targetDb }) => ({
      observability: { port: 0 },
      // The history in the target's database: it takes a baseline of the table, so the table as of an instant can be rebuilt.
      history: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${targetDb}` },
      api: { tokens: [{ name: 'olivia', role: 'operator', hash: tokenHash(tok.operator) }, { name: 'vic', role: 'viewer', hash: tokenHash(tok.viewer) }, { name: 'ada', role: 'admin', hash: tokenHash(tok.admin) }] },
      audit: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${meta}`, signingKey: { env: keyVar }, checkpointEvery: 50 },
      alerts: {
        evaluateEveryMs: 300,
        rules: [
          { name: 'TicketsConflicts', expr: 'sum by (pipeline) (syncline_conflicts_total) > 0', severity: 'warning', summary: '{{ $labels.pipeline }} has {{ $value }} conflicts' },
          { name: 'TicketsBusy', expr: 'sum by (pipeline) (syncline_changes_applied_total) > 0', for: '1h', severity: 'info', summary: '{{ $labels.pipeline }} applies changes' },
        ],
      },
    }),
  });
  t.after(async () => {
    await env.cleanup();
    await dropDb(meta);
  });
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into tickets (id, title, status) select g, 'ticket ' || g, 'open' from generate_series(1, 6) g`);
  const { rt } = await startRuntime(env);
  const stats = () => rt.pipelines[0]!.applier!.stats;
  const row = async (id: number) => (await sql(env.targetDb, `select title, status, points from tickets where id = $1`, [id])).rows[0];
  await waitFor('snapshot', async () => (await sql(env.targetDb, `select count(*)::int n from tickets`)).rows[0].n === 6);

  // Keys 1, 2, 3: edited on the target, then on the source → three manual conflicts; key 2 gets a later change parked behind its conflict.
  await sql(env.targetDb, `update tickets set status = 'escalated on target' where id in (1, 2, 3)`);
  await sql(env.sourceDb, `update tickets set title = 'renamed at source ' || id where id in (1, 2, 3)`);
  await waitFor('three conflicts parked', async () => stats().parked === 3);
  await sql(env.sourceDb, `update tickets set points = 8 where id = 2`);
  await waitFor('key 2 change parked behind its conflict', async () => stats().parkedBehind === 1);

  const base = `http://127.0.0.1:${rt.httpPort}`;
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());

  // A wrong token is refused on the login page.
  {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(`${base}/console/pipelines`);
    await p.getByLabel('API token').fill(newToken());
    await p.getByRole('button', { name: 'Log in' }).click();
    assert.match(await p.getByRole('alert').innerText(), /unknown or revoked API token/);
    await ctx.close();
  }

  // --- operator
  const page = await login(browser, base, tok.operator, '/console/pipelines');
  await page.getByRole('cell', { name: 'realtime' }).waitFor();
  const pipelineRow = page.locator('#pipelines tbody tr', { hasText: 'tickets' });
  assert.match(await pipelineRow.innerText(), /postgres → postgres/);
  await waitFor('pipeline state ok', async () => /\bok\b/.test(await page.locator('#pipelines tbody tr', { hasText: 'tickets' }).innerText()), 20000);
  // Live numbers: a workload moves the applied count and draws the throughput chart, by polling (the page is not reloaded).
  await page.evaluate(() => document.body.setAttribute('data-not-reloaded', 'yes'));
  await sql(env.sourceDb, `insert into tickets (id, title, status) select g, 'ticket ' || g, 'open' from generate_series(100, 399) g`);
  await waitFor('applied count moved on the page', async () => Number(/(\d+) applied/.exec(await page.locator('#pipelines tbody tr', { hasText: 'tickets' }).innerText())?.[1] ?? 0) >= 306, 30000);
  await page.locator('#pipelines svg.spark').waitFor();
  assert.equal(await page.evaluate(() => document.body.getAttribute('data-not-reloaded')), 'yes', 'updated in place');
  await page.screenshot({ path: join(SHOTS, 'pipelines.png') });

  await page.getByRole('link', { name: 'Dead letters' }).click();
  await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
  await page.getByText('1–4 of 4').waitFor().catch(async (e: Error) => assert.fail(`${e.message}\nthe page says:\n${(await page.locator('body').innerText()).slice(0, 2000)}`));
  await page.screenshot({ path: join(SHOTS, 'dlq.png'), fullPage: true });
  const dlq = (await (await fetch(`${base}/api/dlq?state=all`, { headers: { authorization: `Bearer ${tok.operator}` } })).json()) as { deadLetters: { id: string; key: string; reason: string }[] };
  const conflictOf = (key: number) => dlq.deadLetters.find((e) => e.key === `[${key}]` && e.reason === 'conflict')!.id;

  // Key 1: open it, see the versions side by side, type a merged row and apply it.
  await page.getByRole('link', { name: conflictOf(1), exact: true }).click();
  await page.getByRole('heading', { name: 'Versions' }).waitFor();
  const changed = await page.locator('table.versions tr.changed th').allInnerTexts();
  assert.deepEqual(changed.map((s) => s.replace(/[●\s]|\(changed\)/g, '')).sort(), ['status', 'title'], 'the changed fields are marked');
  const versions = await page.locator('table.versions').innerText();
  assert.match(versions, /title\s*\(changed\)\s+ticket 1\s+renamed at source 1\s+ticket 1/);
  await page.getByLabel('Merged title').fill('merged in the console');
  await page.getByLabel('Merged status').fill('escalated on target');
  assert.equal(await page.getByLabel('Merged points').getAttribute('type'), 'number', 'the browser checks the number before sending');
  await page.getByLabel('Merged points').fill('5');
  await page.screenshot({ path: join(SHOTS, 'conflict.png'), fullPage: true });
  const beforeMerge = new Date().toISOString(); // the rollback below goes back to here
  await page.getByRole('button', { name: 'Apply merged row' }).click();
  await page.getByRole('status').filter({ hasText: 'Resolved (merged)' }).waitFor();
  assert.equal(await page.locator('#entry-state').innerText(), 'resolved');
  assert.match(await page.locator('dl.facts').innerText(), /resolved \(merged\) by token:olivia/);
  assert.deepEqual(await row(1), { title: 'merged in the console', status: 'escalated on target', points: 5 }, 'the merged row is in the target');

  // Key 2: keep the target; the change parked behind it is released and applied on top.
  await page.goto(`${base}/console/dlq/${encodeURIComponent(conflictOf(2))}?pipeline=tickets`);
  assert.match(await page.getByRole('heading', { name: /Changes of this key waiting behind it/ }).innerText(), /\(1\)/);
  await page.getByRole('button', { name: 'Keep target' }).click();
  await page.getByRole('status').filter({ hasText: '1 later change(s) of the key released' }).waitFor();
  assert.deepEqual(await row(2), { title: 'renamed at source 2', status: 'open', points: 8 }, 'the released change (a whole source row) applied');

  // A merged value that is not a number (sent around the browser's own check) is refused with the field named; nothing changes.
  const csrf = await page.evaluate(() => JSON.parse(document.body.getAttribute('hx-headers') ?? '{}')['X-CSRF-Token'] as string);
  const bad = await page.evaluate(async ([url, csrf]) => {
    const r = await fetch(url!, { method: 'POST', body: new URLSearchParams({ _csrf: csrf!, choice: 'merged', 'm:title': 'x', 'm:points': 'five' }) });
    return { status: r.status, text: await r.text() };
  }, [`/console/dlq/${encodeURIComponent(conflictOf(3))}/resolve?pipeline=tickets`, csrf]);
  assert.equal(bad.status, 400);
  assert.match(bad.text, /merged row: points must be a number \(got &#39;five&#39;\)/);

  const apiAs = (token: string, path: string, init: RequestInit = {}) => fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  const metric = async (name: string) => [...(await rt.metrics.render()).matchAll(new RegExp(`^${name}\\{[^}]*pipeline="tickets"[^}]*\\} (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);

  // Pause from the pipelines page: a new source change is captured into Kafka but not applied; Resume applies it.
  await page.goto(`${base}/console/pipelines`);
  await page.getByRole('button', { name: 'Pause tickets' }).click();
  await page.getByRole('status').filter({ hasText: 'tickets paused' }).waitFor();
  await page.locator('#pipelines .state-paused').waitFor();
  const produced = await metric('syncline_changes_produced_total');
  const applied = stats().applied;
  await sql(env.sourceDb, `insert into tickets (id, title, status) values (900, 'while paused', 'open')`);
  await waitFor('the change captured into Kafka', async () => (await metric('syncline_changes_produced_total')) > produced, 20000);
  await sleep(1500); // the consumer would have applied it by now
  assert.equal((await sql(env.targetDb, `select count(*)::int n from tickets where id = 900`)).rows[0].n, 0, 'paused: not applied');
  assert.equal(stats().applied, applied);
  await page.screenshot({ path: join(SHOTS, 'pipelines-paused.png') });
  await page.getByRole('button', { name: 'Resume tickets' }).click();
  await page.getByRole('status').filter({ hasText: 'tickets resumed' }).waitFor();
  await waitFor('the change applied after resume', async () => (await sql(env.targetDb, `select count(*)::int n from tickets where id = 900`)).rows[0].n === 1, 20000);
  assert.equal((await apiAs(tok.viewer, '/api/pipelines/tickets/pause', { method: 'POST' })).status, 403, 'a viewer cannot pause through the API');
  // The same through the HTTP API (what `syncline pipeline pause|resume` calls).
  const paused = (await (await apiAs(tok.operator, '/api/pipelines/tickets/pause', { method: 'POST' })).json()) as { paused: boolean; by: string };
  assert.deepEqual([paused.paused, paused.by], [true, 'token:olivia']);
  assert.deepEqual(await (await apiAs(tok.operator, '/api/pipelines/tickets/resume', { method: 'POST' })).json(), { pipeline: 'tickets', paused: false });
  assert.equal((await apiAs(tok.operator, '/api/pipelines/nope/pause', { method: 'POST' })).status, 404);
  const badReplay = await apiAs(tok.operator, '/api/pipelines/tickets/replays', { method: 'POST', body: JSON.stringify({ from: '2026-12-06T10:00:00' }) });
  assert.equal(badReplay.status, 400);
  assert.match(((await badReplay.json()) as { error: string }).error, /from needs a time zone/);

  // Replay: a dry run through the form, its progress, then its summary.
  await page.getByRole('link', { name: 'Replay' }).click();
  await page.getByRole('heading', { name: 'Replay', exact: true }).waitFor();
  assert.equal(await page.getByLabel('Dry run (write nothing)').isChecked(), true, 'dry run is the default');
  await page.getByLabel('Table').selectOption('public.tickets');
  await page.getByRole('button', { name: 'Start replay' }).click();
  await page.waitForURL(/\/console\/pipelines\/tickets\/replays\//);
  await page.getByRole('heading', { name: 'Summary (dry run: nothing was written)' }).waitFor({ timeout: 30000 });
  const summary = await page.locator('table.summary').innerText();
  const read = Number(/Read\s+([\d,]+)/.exec(summary)?.[1]?.replace(/,/g, ''));
  assert.ok(read >= 307, `the replay read every change (${summary})`);
  assert.equal(await page.locator('#replay-status').innerText(), 'done');
  assert.equal(await page.locator('#replay-progress').getAttribute('value'), '100');
  await page.screenshot({ path: join(SHOTS, 'replay.png'), fullPage: true });
  // A bad bound is refused on the form, naming it.
  await page.goto(`${base}/console/replay`);
  // Keyboard only: Tab reaches every field of the replay form and its button.
  const tabbed: string[] = [];
  for (let i = 0; i < 16; i++) {
    await page.keyboard.press('Tab');
    tabbed.push(await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return el ? `${el.tagName.toLowerCase()}:${(el.id ? document.querySelector(`label[for="${el.id}"]`)?.textContent : el.textContent)?.trim() ?? ''}` : '';
    }));
  }
  for (const want of ['select:Pipeline', 'input:From', 'input:To (inclusive, optional)', 'select:Table', 'input:Dry run (write nothing)', 'button:Start replay']) assert.ok(tabbed.includes(want), `Tab reaches ${want} (reached: ${tabbed.join(' | ')})`);
  await page.getByLabel('From').fill('yesterday');
  await page.getByRole('button', { name: 'Start replay' }).click();
  assert.match(await page.getByRole('alert').innerText(), /from must be an ISO time .*got 'yesterday'/);

  // History: key 1's timeline with its diffs (the merged row applied in the console), and the table as of now.
  await page.getByRole('link', { name: 'History' }).click();
  await page.getByLabel('Key', { exact: true }).fill('1');
  await page.getByRole('button', { name: 'Show timeline' }).click();
  await page.getByRole('heading', { name: /Timeline of public\.tickets key/ }).waitFor();
  const steps = await page.locator('ol.timeline > li').allInnerTexts();
  assert.ok(steps.length >= 2, `key 1 has its snapshot and later steps (${steps.length})`);
  assert.ok(steps.some((x) => /title\s+ticket 1\s+merged in the console/.test(x)), `a step shows title: ticket 1 → merged in the console (${steps.join(' / ')})`);
  assert.ok(!steps.join('').includes('2026-01-01'), 'the masked column (updated_at) stays masked for an operator');
  await page.screenshot({ path: join(SHOTS, 'history.png'), fullPage: true });
  assert.equal(await page.getByRole('button', { name: 'Preview rollback' }).count(), 0, 'rollback is for admins: an operator has no form');
  await page.getByLabel('As of (ISO time)').fill(new Date().toISOString());
  await page.getByRole('button', { name: 'Show table' }).click();
  await page.getByRole('heading', { name: /public\.tickets as of/ }).waitFor();
  assert.match(await page.getByRole('heading', { name: /public\.tickets as of/ }).innerText(), /: 307 row\(s\)/);

  // Alerts: one firing (conflicts), one pending (for: 1h).
  await page.getByRole('link', { name: 'Alerts' }).click();
  await page.waitForURL((u) => u.pathname === '/console/alerts');
  await waitFor('the alerts evaluated', async () => {
    await page.reload();
    return /1 firing, 1 pending/.test(await page.locator('#alerts-count').innerText());
  }, 20000, 300);
  assert.match(await page.getByRole('row', { name: /TicketsConflicts/ }).innerText(), /firing\s+warning\s+tickets has \d+ conflicts/);
  await page.screenshot({ path: join(SHOTS, 'alerts.png'), fullPage: true });

  // An operator sees no reveal, and the server refuses one (admin only).
  await page.goto(`${base}/console/dlq/${encodeURIComponent(conflictOf(3))}?pipeline=tickets`);
  assert.equal(await page.getByRole('button', { name: 'Reveal masked values' }).count(), 0);
  const opReveal = await page.evaluate(async (id) => {
    const csrf = JSON.parse(document.body.getAttribute('hx-headers') ?? '{}')['X-CSRF-Token'] as string;
    return {
      reveal: (await fetch(`/console/dlq/${encodeURIComponent(id)}/reveal?pipeline=tickets`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf, reason: 'curious' }) })).status,
      rollback: (await fetch('/console/pipelines/tickets/rollback', { method: 'POST', body: new URLSearchParams({ _csrf: csrf, to: '2026-01-01T00:00:00Z', confirm: 'yes' }) })).status,
    };
  }, conflictOf(3));
  assert.deepEqual(opReveal, { reveal: 403, rollback: 403 }, 'reveal and rollback are admin only');

  // An admin reveals the masked value, with a reason; it is audited.
  const admin = await login(browser, base, tok.admin, `/console/dlq/${encodeURIComponent(conflictOf(3))}`);
  assert.match(await admin.locator('table.versions').innerText(), /updated_at\s+\*\*\*/, 'masked before the reveal');
  await admin.getByLabel('Reason (recorded in the audit trail)').fill('ticket 3 support case');
  await admin.getByRole('button', { name: 'Reveal masked values' }).click();
  await admin.getByRole('heading', { name: 'Revealed (unmasked)' }).waitFor();
  assert.match(await admin.locator('pre.revealed').innerText(), /2026-01-01/);
  await admin.screenshot({ path: join(SHOTS, 'reveal.png'), fullPage: true });

  // An admin rolls key 1 back to before its merged row: a dry-run preview first (nothing written), then confirmed.
  await admin.goto(`${base}/console/history`);
  await admin.getByLabel('Roll back to (ISO time)').fill(beforeMerge);
  await admin.getByLabel('Table (optional)').fill('public.tickets');
  await admin.getByLabel('Key (optional)').fill('1');
  await admin.getByRole('button', { name: 'Preview rollback' }).click();
  await admin.getByRole('heading', { name: 'Preview (dry run: nothing written): 1 key(s) would change' }).waitFor();
  const preview = await admin.getByRole('region', { name: 'Keys the rollback would change' }).innerText();
  for (const [field, now, then] of [['title', 'merged in the console', 'ticket 1'], ['status', 'escalated on target', 'open'], ['points', '5', '1']]) {
    assert.match(preview, new RegExp(`${field}\\s+${now}\\s+${then}`), `the preview shows ${field}: ${now} → ${then} (${preview})`);
  }
  assert.deepEqual(await row(1), { title: 'merged in the console', status: 'escalated on target', points: 5 }, 'the preview wrote nothing');
  await admin.screenshot({ path: join(SHOTS, 'rollback-preview.png'), fullPage: true });
  await admin.getByRole('button', { name: 'Roll back 1 key(s)' }).click();
  await admin.getByRole('status').filter({ hasText: /Rolled back tickets to .*: 1 of 1 key\(s\) written/ }).waitFor();
  assert.deepEqual(await row(1), { title: 'ticket 1', status: 'open', points: 1 }, 'key 1 is back as it was before the merge');

  // Audit: the actions of this test, newest first, filtered; the last verification of the pipeline.
  const verify = await apiAs(tok.operator, '/api/pipelines/tickets/verify', { method: 'POST', body: '{}' });
  assert.equal(verify.status, 202);
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.waitForURL((u) => u.pathname === '/console/audit');
  let missing: string[] = [];
  const auditText = await waitFor('the audit entries recorded', async () => {
    await page.reload();
    const text = await page.locator('main').innerText();
    missing = ['dlq.resolve', 'pipeline.pause', 'pipeline.resume', 'replay.start', 'replay.end', 'dlq.reveal', 'rollback', 'api.denied'].filter((a) => !text.includes(a));
    return missing.length === 0 ? text : undefined;
  }, 20000, 300).catch((err: Error) => assert.fail(`${err.message}: missing ${missing.join(', ')} on ${page.url()}`));
  assert.match(auditText, /token:olivia\s+operator\s+pipeline\.pause\s+pipeline:tickets/);
  assert.match(auditText, /token:ada\s+admin\s+dlq\.reveal/);
  assert.match(await page.getByRole('row', { name: /^tickets/ }).innerText(), /(running|done) \(api\)/, 'the last verification is shown');
  await page.getByLabel('Action').fill('pipeline.*');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.getByText('4 entries, newest first.').waitFor();
  assert.deepEqual((await page.locator('table.audit td code').allInnerTexts()), ['pipeline.resume', 'pipeline.pause', 'pipeline.resume', 'pipeline.pause']);
  await page.screenshot({ path: join(SHOTS, 'audit.png'), fullPage: true });
  const viaApi = (await (await apiAs(tok.operator, '/api/audit?action=pipeline.*&limit=10')).json()) as { entries: { action: string; actor: string }[] };
  assert.deepEqual(viaApi.entries.map((e) => e.action), ['pipeline.resume', 'pipeline.pause', 'pipeline.resume', 'pipeline.pause']);
  assert.equal((await apiAs(tok.viewer, '/api/audit')).status, 403, 'the audit trail is not for viewers');

  // Keyboard only on the dead-letter page: Tab reaches the filters, the bulk action, a checkbox and the entry's link.
  await page.goto(`${base}/console/dlq`);
  await page.getByText('1–1 of 1').waitFor();
  const reached: string[] = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el) return '';
      const label = el.getAttribute('aria-label') ?? (el.id ? document.querySelector(`label[for="${el.id}"]`)?.textContent : null) ?? el.textContent ?? '';
      return `${el.tagName.toLowerCase()}:${label.trim()}`;
    }));
  }
  for (const want of ['a:Skip to content', 'select:Pipeline', 'select:Kind', 'input:Table', 'input:Key', 'select:State', 'button:Filter', 'select:With the selected', 'button:Apply', `input:Select dead letter ${conflictOf(3)}`, `a:${conflictOf(3)}`]) {
    assert.ok(reached.includes(want), `Tab reaches ${want} (reached: ${reached.join(' | ')})`);
  }
  // Back to the link and Enter opens the dead letter.
  while (await page.evaluate(() => document.activeElement?.textContent?.trim()) !== conflictOf(3)) await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Versions' }).waitFor();

  // Phone width: no sideways overflow of the page (tables scroll inside their region).
  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ['/console/dlq', `/console/dlq/${encodeURIComponent(conflictOf(3))}?pipeline=tickets`, '/console/pipelines']) {
    await page.goto(base + path);
    const { over, wide } = await page.evaluate(() => ({
      over: document.documentElement.scrollWidth - window.innerWidth,
      // What sticks out (for the message): the outermost elements wider than the screen.
      wide: [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !(el.parentElement && el.parentElement.getBoundingClientRect().right > window.innerWidth + 1)).map((el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className}`).slice(0, 5),
    }));
    assert.ok(over <= 1, `${path} overflows a 390 px screen by ${over} px: ${wide.join(', ')}`);
  }
  await page.goto(`${base}/console/dlq/${encodeURIComponent(conflictOf(3))}?pipeline=tickets`);
  await page.screenshot({ path: join(SHOTS, 'conflict-phone.png'), fullPage: true });

  // --- viewer: no action controls; a forged POST is refused by the server.
  const viewer = await login(browser, base, tok.viewer);
  await viewer.getByText('1–1 of 1').waitFor();
  assert.deepEqual(await viewer.locator('main button').allInnerTexts(), ['Filter'], 'no action control on the list (only the filter)');
  assert.equal(await viewer.locator('main input[type=checkbox], main form[method=post]').count(), 0);
  await viewer.getByRole('link', { name: conflictOf(3), exact: true }).click();
  await viewer.getByRole('heading', { name: 'Versions' }).waitFor();
  for (const name of ['Keep source', 'Keep target', 'Apply merged row', 'Requeue', 'Discard']) assert.equal(await viewer.getByRole('button', { name }).count(), 0, `a viewer sees no ${name}`);
  assert.equal(await viewer.getByRole('textbox').count(), 0, 'no merged-row editor');
  await viewer.screenshot({ path: join(SHOTS, 'conflict-viewer.png'), fullPage: true });
  // (No named functions inside evaluate: tsx would wrap them in a helper the page does not have.)
  const forged = await viewer.evaluate(async (id) => {
    const csrf = JSON.parse(document.body.getAttribute('hx-headers') ?? '{}')['X-CSRF-Token'] as string;
    const url = `/console/dlq/${encodeURIComponent(id)}/discard?pipeline=tickets`;
    return {
      withToken: (await fetch(url, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) })).status,
      withoutToken: (await fetch(url, { method: 'POST', body: new URLSearchParams({}) })).status,
      bulk: (await fetch('/console/dlq/bulk', { method: 'POST', body: new URLSearchParams({ _csrf: csrf, action: 'discard', id }) })).status,
    };
  }, conflictOf(3));
  assert.deepEqual(forged, { withToken: 403, withoutToken: 403, bulk: 403 });
  const still = (await (await fetch(`${base}/api/dlq/${encodeURIComponent(conflictOf(3))}`, { headers: { authorization: `Bearer ${tok.viewer}` } })).json()) as { state: string };
  assert.equal(still.state, 'open', 'the forged discard changed nothing');
  assert.equal((await row(3)).status, 'escalated on target');

  // The new pages: no action control for a viewer, and each new action refused by the server (403) even with the viewer's CSRF token.
  await viewer.goto(`${base}/console/pipelines`);
  await viewer.locator('#pipelines').waitFor();
  assert.equal(await viewer.locator('main button, main form[method=post]').count(), 0, 'no pause, resume, sync or backfill control');
  await viewer.goto(`${base}/console/replay`);
  assert.deepEqual(await viewer.locator('main button').allInnerTexts(), ['Choose'], 'no replay form');
  assert.equal(await viewer.getByRole('link', { name: 'Audit' }).count(), 0, 'no audit link');
  const refused = await viewer.evaluate(async (id) => {
    const csrf = JSON.parse(document.body.getAttribute('hx-headers') ?? '{}')['X-CSRF-Token'] as string;
    const posts: [string, string, Record<string, string>][] = [
      ['pause', '/console/pipelines/tickets/pause', {}],
      ['resume', '/console/pipelines/tickets/resume', {}],
      ['replay', '/console/pipelines/tickets/replays', { from: 'beginning' }],
      ['reveal', `/console/dlq/${encodeURIComponent(id)}/reveal?pipeline=tickets`, { reason: 'x' }],
      ['rollback', '/console/pipelines/tickets/rollback', { to: '2026-01-01T00:00:00Z' }],
    ];
    const out: Record<string, number> = {};
    for (const [name, url, extra] of posts) out[name] = (await fetch(url, { method: 'POST', body: new URLSearchParams({ _csrf: csrf, ...extra }) })).status;
    out.audit = (await fetch('/console/audit')).status;
    return out;
  }, conflictOf(3));
  assert.deepEqual(refused, { pause: 403, resume: 403, replay: 403, reveal: 403, rollback: 403, audit: 403 });
  await viewer.goto(`${base}/console/history`);
  assert.equal(await viewer.locator('main form[method=post]').count(), 0, 'no rollback form');

  // Logging out ends the session: the console asks for the login again.
  await viewer.getByRole('button', { name: 'Log out' }).click();
  await viewer.waitForURL((u) => u.pathname === '/console/login');
  await viewer.goto(`${base}/console/dlq`);
  assert.match(viewer.url(), /\/console\/login/);
});
