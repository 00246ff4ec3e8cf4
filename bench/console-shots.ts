/**
 * Screenshots of every console page at light load and with 10,000 dead letters, for the README
 * (issue 24), and the server time of each page in both states.
 *
 *   npm run console:shots        (the local stack up: npm run stack:up; Debian's chromium)
 *
 * Runs a real syncline in this process (PostgreSQL → Kafka → PostgreSQL, manual conflicts, a
 * validation rule, change history, audit trail, alert rules, an admin token) and drives the console
 * in chromium (playwright-core):
 *   light: a few rows, three manual conflicts (one with a change parked behind it), a small workload;
 *   10k:   then 10,000 source rows the validation rule refuses — 10,000 real invalid dead letters.
 * Each state: pipelines, dead letters, a conflict (with a merged row being typed), a replay dry run,
 * a key's timeline, audit, alerts, timed; shot: all of them and the rollback preview at light load,
 * those whose picture changes (pipelines, dead letters, replay, alerts) with 10,000 dead letters. 1280×800 viewport (not full
 * pages), so the PNGs stay small: reports/console/light/*.png and reports/console/10k/*.png, which
 * are committed (the README links the main ones; .gitignore keeps the rest of reports/ out).
 * Server time: the browser's timing of each page's document (request sent → first byte).
 */
import { execSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { newToken, tokenHash } from '../src/security/access/tokens.js';
import { createDb, dropDb, PG, ROOT, sql, startRuntime, testEnv, waitFor } from '../test/helpers.js';

const OUT = join(ROOT, 'reports', 'console');
const DDL = `create table tickets (id int primary key, title text not null, status text not null, points int not null default 1, updated_at timestamptz not null default '2026-01-01T00:00:00Z')`;

let executablePath: string;
try {
  executablePath = execSync('command -v chromium', { shell: '/bin/bash', encoding: 'utf8' }).trim();
} catch {
  throw new Error('no chromium on this machine: apt-get install -y chromium (the console test installs it too)');
}

const admin = newToken();
const keyVar = `SYNCLINE_SHOTS_AUDIT_KEY_${process.pid}`;
process.env[keyVar] = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const meta = `syncline_shots_${Math.random().toString(16).slice(2, 10)}_meta`;
await createDb(meta);
const env = await testEnv([{ name: 'tickets', tables: [{ source: 'public.tickets', mask: ['updated_at'], validate: { fields: { points: { min: 0 } } } }], conflict: { strategy: 'manual' }, history: {} }], {
  extra: ({ targetDb }) => ({
    observability: { port: 0 },
    history: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${targetDb}` },
    api: { tokens: [{ name: 'ada', role: 'admin', hash: tokenHash(admin) }] },
    audit: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${meta}`, signingKey: { env: keyVar }, checkpointEvery: 50 },
    alerts: {
      evaluateEveryMs: 300,
      rules: [
        { name: 'TicketsConflicts', expr: 'sum by (pipeline) (syncline_conflicts_total) > 0', severity: 'warning', summary: '{{ $labels.pipeline }} has {{ $value }} conflicts' },
        { name: 'TicketsDeadLetters', expr: 'sum by (pipeline) (syncline_dead_letters_total) > 1000', severity: 'critical', summary: '{{ $labels.pipeline }} has {{ $value }} dead letters' },
        { name: 'TicketsBusy', expr: 'sum by (pipeline) (syncline_changes_applied_total) > 0', for: '1h', severity: 'info', summary: '{{ $labels.pipeline }} applies changes' },
      ],
    },
  }),
});
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into tickets (id, title, status) select g, 'ticket ' || g, 'open' from generate_series(1, 6) g`);
  const { rt } = await startRuntime(env);
  const p = rt.pipelines[0]!;
  await waitFor('snapshot', async () => (await sql(env.targetDb, `select count(*)::int n from tickets`)).rows[0].n === 6);
  const beforeConflicts = new Date().toISOString();
  await sql(env.targetDb, `update tickets set status = 'escalated on target' where id in (1, 2, 3)`);
  await sql(env.sourceDb, `update tickets set title = 'renamed at source ' || id where id in (1, 2, 3)`);
  await waitFor('three conflicts', async () => p.applier!.stats.parked === 3);
  await sql(env.sourceDb, `update tickets set points = 8 where id = 2`);
  await waitFor('a change parked behind key 2', async () => p.applier!.stats.parkedBehind === 1);
  await sql(env.sourceDb, `insert into tickets (id, title, status) select g, 'ticket ' || g, 'open' from generate_series(100, 399) g`);
  await waitFor('the workload applied', async () => (await sql(env.targetDb, `select count(*)::int n from tickets`)).rows[0].n === 306);

  const base = `http://127.0.0.1:${rt.httpPort}`;
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await page.goto(`${base}/console/pipelines`);
  await page.getByLabel('API token').fill(admin);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => u.pathname === '/console/pipelines');
  const api = async (path: string) => (await fetch(base + path, { headers: { authorization: `Bearer ${admin}` } })).json();
  const conflictId = async () => ((await api('/api/dlq?kind=conflict')) as { deadLetters: { id: string; key: string; reason: string }[] }).deadLetters.find((e) => e.key === '[1]' && e.reason === 'conflict')!.id;

  const times: Record<string, Record<string, number>> = {};
  /** Go to a page; its server time (request sent → first byte of the document). */
  const open = async (set: string, name: string, path: string): Promise<void> => {
    const r = await page.goto(base + path);
    if (!r || r.status() !== 200) throw new Error(`${path}: ${r?.status()}`);
    const t = r.request().timing();
    (times[name] ??= {})[set] = t.responseStart - t.requestStart;
  };
  // With 10,000 dead letters only the pages whose picture changes are shot (a conflict, a key's
  // timeline and the audit page look the same); every page's server time is measured in both states.
  const shot = async (set: string, name: string) => {
    if (set === '10k' && ['conflict', 'history', 'audit'].includes(name)) return;
    mkdirSync(join(OUT, set), { recursive: true });
    await page.screenshot({ path: join(OUT, set, `${name}.png`) });
  };

  const pages = async (set: string) => {
    await open(set, 'pipelines', '/console/pipelines');
    await page.locator('#pipelines tbody tr', { hasText: 'tickets' }).waitFor();
    await waitFor('pipeline state ok', async () => /\bok\b/.test(await page.locator('#pipelines tbody tr', { hasText: 'tickets' }).innerText()), 20000);
    await page.waitForTimeout(2500); // a poll or two: the chart has points
    await shot(set, 'pipelines');

    // The first look may find a read of new dead letters running (the page shows its progress and asks again).
    await open(set, 'dead letters', '/console/dlq');
    await page.locator('#dlq-count', { hasText: / of / }).waitFor({ timeout: 30000 });
    await page.locator('#dlq-loading').waitFor({ state: 'detached', timeout: 60000 });
    await open(set, 'dead letters, read', '/console/dlq');
    await page.locator('#dlq-count', { hasText: / of / }).waitFor();
    await shot(set, 'dlq');

    await open(set, 'a conflict', `/console/dlq/${encodeURIComponent(await conflictId())}?pipeline=tickets`);
    await page.getByRole('heading', { name: 'Versions' }).waitFor();
    await page.getByLabel('Merged title').fill('merged in the console');
    await page.getByRole('heading', { name: 'Versions' }).scrollIntoViewIfNeeded();
    await shot(set, 'conflict');

    await open(set, 'replay', '/console/replay');
    await page.getByLabel('Table').selectOption('public.tickets');
    await page.getByRole('button', { name: 'Start replay' }).click();
    await page.waitForURL(/\/console\/pipelines\/tickets\/replays\//);
    await page.getByRole('heading', { name: /^Summary/ }).waitFor({ timeout: 120000 });
    await shot(set, 'replay');

    await open(set, 'history', '/console/history?pipeline=tickets&table=public.tickets&key=2');
    await page.getByRole('heading', { name: /Timeline of public\.tickets key/ }).waitFor();
    await shot(set, 'history');

    await open(set, 'audit', '/console/audit');
    await shot(set, 'audit');

    await open(set, 'alerts', '/console/alerts');
    await shot(set, 'alerts');
  };

  for (const set of ['light', '10k']) rmSync(join(OUT, set), { recursive: true, force: true });
  await pages('light');
  // The rollback preview (dry run) of key 1 to before its conflict.
  await page.goto(`${base}/console/history?pipeline=tickets`);
  await page.getByLabel('Roll back to (ISO time)').fill(beforeConflicts);
  await page.getByLabel('Table (optional)').fill('public.tickets');
  await page.getByRole('button', { name: 'Preview rollback' }).click();
  await page.getByRole('heading', { name: /^Preview \(dry run/ }).waitFor();
  await page.getByRole('heading', { name: /^Preview \(dry run/ }).scrollIntoViewIfNeeded();
  await shot('light', 'rollback-preview');

  // 10,000 rows the validation rule (points >= 0) refuses: 10,000 invalid dead letters.
  await sql(env.sourceDb, `insert into tickets (id, title, status, points) select g, 'ticket ' || g, 'open', -1 from generate_series(10000, 19999) g`);
  await waitFor('10,000 dead letters', async () => p.processor!.invalid.count >= 10000, 300000, 500);
  await pages('10k');

  const names = Object.keys(times);
  process.stdout.write(`server time of each page (ms): light / 10,000 dead letters\n${names.map((n) => `  ${n.padEnd(20)} ${times[n]!.light?.toFixed(0) ?? '—'} / ${times[n]!['10k']?.toFixed(0) ?? '—'}`).join('\n')}\n`);
  for (const set of ['light', '10k']) {
    const files = readdirSync(join(OUT, set));
    process.stdout.write(`${join('reports/console', set)}: ${files.length} PNGs, ${(files.reduce((n, f) => n + statSync(join(OUT, set, f)).size, 0) / 1024).toFixed(0)} KiB\n`);
  }
} finally {
  await browser.close();
  await env.cleanup();
  await dropDb(meta).catch(() => undefined);
  delete process.env[keyVar];
}
process.exit(0);
