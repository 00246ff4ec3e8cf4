/**
 * `syncline alerts export [--config FILE] [--out FILE] [--check]`: writes the config's alert rules
 * as Prometheus alerting rules (see observe/alerts/export.ts). --check exits 1 when the file differs
 * from what would be written (CI keeps prometheus/alerts.yml current).
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadConfig } from '../core/config/load.js';
import { renderPrometheusRules } from '../observe/alerts/export.js';

export async function alertsExport(opts: { config: string; out: string; check?: boolean }): Promise<{ code: number; message: string }> {
  const config = await loadConfig(opts.config);
  const expected = renderPrometheusRules(config.alerts);
  if (opts.check) {
    let current: string | undefined;
    try {
      current = readFileSync(opts.out, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== expected) return { code: 1, message: `${opts.out} is ${current === undefined ? 'missing' : 'stale'}: run \`syncline alerts export --config ${opts.config} --out ${opts.out}\` and commit the result.` };
    return { code: 0, message: `${opts.out} is up to date.` };
  }
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, expected);
  return { code: 0, message: `wrote ${opts.out} (${config.alerts?.rules.length ?? 0} rules)` };
}
