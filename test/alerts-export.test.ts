/**
 * prometheus/alerts.yml is what `syncline alerts export` writes from configs/data-sync-config.yaml
 * (CI fails when a rule changed and the file was not regenerated), and the CLI's --check says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alertsExport } from '../src/cli/alerts-export.js';
import { ROOT } from './helpers.js';
import '../connectors/index.js';

test('prometheus/alerts.yml is current with the rules of configs/data-sync-config.yaml', async () => {
  const out = join(ROOT, 'prometheus/alerts.yml');
  const r = await alertsExport({ config: join(ROOT, 'configs/data-sync-config.yaml'), out, check: true });
  assert.equal(r.code, 0, r.message);
  const text = readFileSync(out, 'utf8');
  assert.match(text, /alert: SynclineStageDown/);
  assert.match(text, /expr: syncline_replication_slot_lag_bytes > 1e9/);
});
