/**
 * The config's alert rules as a Prometheus alerting-rules file (1:1: the same expression, `for`,
 * severity and labels; the summary as an annotation). The expression language is a PromQL subset
 * (./expr.ts), so `promtool check rules` accepts what the config accepts. Written by
 * `syncline alerts export`; prometheus/alerts.yml is generated from configs/data-sync-config.yaml.
 */
import { stringify } from 'yaml';
import type { AlertsConfig } from '../../core/config/schema.js';

export const EXPORT_HEADER = [
  '# Prometheus alerting rules generated from the `alerts.rules` of a syncline config by',
  '# `syncline alerts export`: do not edit, change the config and regenerate.',
  '# The same rules are evaluated by syncline itself (see docs/config.md, section alerts).',
].join('\n');

export function renderPrometheusRules(alerts: AlertsConfig | undefined, group = 'syncline'): string {
  const rules = (alerts?.rules ?? []).map((r) => ({
    alert: r.name,
    expr: r.expr,
    ...(r.for ? { for: r.for } : {}),
    labels: { ...(r.labels ?? {}), severity: r.severity },
    annotations: { summary: r.summary },
  }));
  return `${EXPORT_HEADER}\n${stringify({ groups: [{ name: group, rules }] }, { lineWidth: 0 })}`;
}
