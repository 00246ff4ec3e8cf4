/**
 * `syncline audit list|export|verify|prune|keygen`: the audit trail (src/security/audit/), read
 * directly from its database (config `audit.url`; no running syncline needed).
 *  - list     newest first: --since (ISO time or a duration like 24h, 7d), --actor, --action (a
 *             trailing * matches a prefix: dlq.*), --limit (default 100); --json for JSON lines
 *  - export   every entry, oldest first, as JSON lines (--format jsonl), with prevHash and hash, then
 *             the checkpoints (lines with "checkpoint": true), to a file (--out) or stdout
 *  - verify   recomputes the chain and checks the checkpoint signatures; names the first altered,
 *             missing or reordered entry and any bad checkpoint. Exit 0 intact, 1 not intact, 2 usage
 *  - prune    drops entries past audit.retentionDays up to a signed checkpoint (a running syncline does it daily)
 *  - keygen   writes a new Ed25519 key pair (PEM) for audit.signingKey / audit.publicKey
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import { writeFileSync, existsSync } from 'node:fs';
import { loadConfig } from '../core/config/load.js';
import type { AuditConfig, SynclineConfig } from '../core/config/schema.js';
import { fatal } from '../core/errors.js';
import { rootLogger } from '../core/log.js';
import { Auditor, AuditStore, generateAuditKeys, loadAuditKeys, verifyChain, type AuditEntry, type VerifyResult } from '../security/audit/index.js';

function auditConfig(config: SynclineConfig, file: string): AuditConfig {
  if (!config.audit) throw fatal('AUDIT_NOT_CONFIGURED', `${file} has no audit section: there is no audit trail to read (see docs/security.md, "Audit trail")`);
  return config.audit;
}

/** --since: an ISO time, or a duration back from now (30m, 24h, 7d). */
export function parseSince(v: string, now = new Date()): string {
  const d = /^(\d+)(m|h|d)$/.exec(v);
  if (d) return new Date(now.getTime() - Number(d[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 'm']).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw fatal('USAGE', `--since must be an ISO time (2026-12-01T00:00:00Z) or a duration (30m, 24h, 7d); got '${v}'`);
  return new Date(t).toISOString();
}

export function entryLine(e: AuditEntry): string {
  const details = Object.keys(e.details).length ? `  ${JSON.stringify(e.details)}` : '';
  return `${String(e.seq).padStart(6)}  ${e.at}  ${e.actor}${e.role ? ` (${e.role})` : ''}  ${e.action}  ${e.object ?? '-'}${details}`;
}

/** Verify the trail of a config: the chain from its store, the checkpoints against the public key. */
export async function verifyAudit(c: AuditConfig, now = new Date()): Promise<VerifyResult> {
  const keys = loadAuditKeys(c);
  const store = new AuditStore(c.url, c.table);
  try {
    const [entries, checkpoints] = await Promise.all([store.list(), store.checkpoints()]);
    return verifyChain(entries, checkpoints, { publicKey: keys.publicKey, coverWithinMs: 2 * c.checkpointEveryMs, now });
  } finally {
    await store.close();
  }
}

/** The actions of `syncline audit …` (their options: ./commands/audit.ts, loaded without this module). */
export async function auditList(o: { config: string; since?: string; actor?: string; action?: string; limit: string; json?: boolean }): Promise<void> {
  if (!/^\d+$/.test(o.limit)) throw fatal('USAGE', `--limit must be a whole number (got '${o.limit}')`);
  const c = auditConfig(loadConfig(o.config), o.config);
  const store = new AuditStore(c.url, c.table);
  try {
    const list = await store.list({ since: o.since ? parseSince(o.since) : undefined, actor: o.actor, action: o.action, limit: Number(o.limit), order: 'desc' });
    process.stdout.write(list.map((e) => (o.json ? JSON.stringify(e) : entryLine(e))).join('\n') + (list.length ? '\n' : ''));
    if (!o.json && list.length === 0) process.stderr.write('no audit entries match\n');
  } finally {
    await store.close();
  }
}

export async function auditExport(o: { config: string; format: string; out?: string }): Promise<void> {
  if (o.format !== 'jsonl') throw fatal('USAGE', `--format must be jsonl (got '${o.format}')`);
  const c = auditConfig(loadConfig(o.config), o.config);
  const store = new AuditStore(c.url, c.table);
  try {
    const [entries, checkpoints] = await Promise.all([store.list(), store.checkpoints()]);
    const text = [...entries.map((e) => JSON.stringify(e)), ...checkpoints.map((k) => JSON.stringify({ checkpoint: true, ...k }))].map((l) => l + '\n').join('');
    if (o.out) {
      writeFileSync(o.out, text);
      process.stderr.write(`${entries.length} entries and ${checkpoints.length} checkpoints written to ${o.out}\n`);
    } else process.stdout.write(text);
  } finally {
    await store.close();
  }
}

export async function auditVerify(o: { config: string }): Promise<void> {
  const c = auditConfig(loadConfig(o.config), o.config);
  const r = await verifyAudit(c);
  const range = r.entries ? `seq ${r.first}..${r.last}` : 'no entries';
  const from = r.anchor > 0 ? `, from the signed checkpoint at seq ${r.anchor} (older entries pruned)` : '';
  if (r.ok) {
    process.stdout.write(`audit trail intact: ${r.entries} entries (${range}${from}), ${r.checkpoints} signed checkpoints verified\n`);
    return;
  }
  const first = r.problems[0]!;
  process.stdout.write(`audit trail NOT intact: first problem at seq ${first.seq}: ${first.message}\n`);
  for (const p of r.problems.slice(1, 20)) process.stdout.write(`  also seq ${p.seq} (${p.kind}): ${p.message}\n`);
  if (r.problems.length > 20) process.stdout.write(`  … and ${r.problems.length - 20} more problems\n`);
  process.stdout.write(`checked ${r.entries} entries (${range}${from}) and ${r.checkpoints} checkpoints\n`);
  process.exitCode = 1;
}

export async function auditPrune(o: { config: string }): Promise<void> {
  const c = auditConfig(loadConfig(o.config), o.config);
  const a = new Auditor(c, rootLogger.child({ stage: 'audit' }));
  try {
    const r = await a.prune();
    process.stdout.write(r && r.deleted > 0 ? `pruned ${r.deleted} entries through seq ${r.through} (a signed checkpoint)\n` : 'nothing to prune (no signed checkpoint older than the retention)\n');
  } finally {
    await a.close();
  }
}

export function auditKeygen(o: { private: string; public: string }): void {
  for (const f of [o.private, o.public]) if (existsSync(f)) throw fatal('USAGE', `${f} exists: not overwritten`);
  const k = generateAuditKeys();
  writeFileSync(o.private, k.privatePem, { mode: 0o600 });
  writeFileSync(o.public, k.publicPem);
  process.stdout.write(`wrote ${o.private} (private, 0600) and ${o.public} (public)\n`);
}
