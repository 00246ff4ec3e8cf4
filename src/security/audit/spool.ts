/**
 * The audit trail's local spool: what makes an entry durable before the audit database has it.
 *
 * Owner: one per Auditor (one per process and trail). record() writes each entry as one JSON line
 * to `<spoolDir>/<table>-<url hash>.<pid>.<n>.jsonl` and fsyncs it before returning, so an entry
 * whose action was acknowledged survives a crash of the process or an outage of the metadata
 * database. When every entry written so far has been appended to the table, the file is emptied
 * (clear()). On crash the file stays: the next process on this host with the same trail adopts
 * every spool file of a process that no longer runs (atomic rename: two starting processes never
 * both take one), copies its entries into its own spool (fsynced) ahead of anything it records
 * itself, and removes it; they are then appended in their order. An entry appended but not yet
 * cleared when the process died is appended again with the same id: the store skips ids it holds
 * (store.ts), so nothing is written twice. A torn last line (a crash inside write) is skipped and
 * logged: its record() had not returned, so its action was never acknowledged.
 *
 * Example line: {"id":"6f1c…","at":"2026-12-06T02:40:01.123Z","actor":"token:ops","role":"operator","action":"dlq.discard","object":"dlq:orders/…","details":{…}}
 */
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fatal } from '../../core/errors.js';
import type { PendingEntry } from './store.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'; // exists, someone else's
  }
}

/** Spools opened by this process (two Auditors of one trail in one process, as tests make, get a file each). */
let opened = 0;

export class AuditSpool {
  readonly file: string;
  private readonly prefix: string;
  private fd: number;

  constructor(readonly dir: string, url: string, table: string, private readonly log: Logger) {
    this.prefix = `${table}-${createHash('sha256').update(url).digest('hex').slice(0, 12)}.`;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.file = join(dir, `${this.prefix}${process.pid}.${opened++}.jsonl`);
      this.fd = openSync(this.file, 'a', 0o600);
    } catch (err) {
      throw fatal('AUDIT_SPOOL', `audit.spoolDir ${dir}: cannot open the audit spool there (${(err as Error).message}); entries could not be kept until the audit database has them`);
    }
  }

  /**
   * Entries left by processes of this trail that no longer run (oldest file first), moved into this
   * spool; returned in order, for the caller to append before anything new.
   */
  adopt(): PendingEntry[] {
    const out: PendingEntry[] = [];
    // Empty spools of any trail whose process is gone (a kill after everything was appended): nothing to keep.
    for (const f of readdirSync(this.dir)) {
      const parts = f.split('.');
      const pid = Number(parts[parts.length - 3]);
      if (!f.endsWith('.jsonl') || !Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
      try {
        if (statSync(join(this.dir, f)).size === 0) unlinkSync(join(this.dir, f));
      } catch {
        /* taken or removed by another process */
      }
    }
    const files = readdirSync(this.dir)
      .filter((f) => f.startsWith(this.prefix) && f.endsWith('.jsonl'))
      .map((f) => ({ f, pid: Number(f.slice(this.prefix.length, -'.jsonl'.length).split('.')[0]) }))
      .filter((x) => Number.isInteger(x.pid) && x.pid !== process.pid && !alive(x.pid));
    for (const { f } of files) {
      const from = join(this.dir, f);
      const mine = join(this.dir, `${f}.adopted-by-${process.pid}`);
      try {
        renameSync(from, mine);
      } catch {
        continue; // another process took it
      }
      const lines = readFileSync(mine, 'utf8').split('\n');
      const these: PendingEntry[] = [];
      let torn = 0;
      for (const l of lines) {
        if (l.trim() === '') continue;
        try {
          these.push(JSON.parse(l) as PendingEntry);
        } catch {
          torn++;
        }
      }
      if (torn > 0) this.log.warn({ file: f, torn }, 'audit.spool.torn: a line cut by a crash while it was written (its action was not acknowledged) is skipped');
      if (these.length > 0) this.log.warn({ file: f, entries: these.length }, 'audit.spool.adopted: entries of a process that stopped before the audit database had them; appended first');
      for (const e of these) this.write(e, false);
      if (these.length > 0) fsyncSync(this.fd);
      unlinkSync(mine);
      out.push(...these);
    }
    // Several dead processes: by time (stable: one process's entries keep their order).
    return out.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  }

  /** One entry, durable on return (fsync). Throws when the disk refuses it. */
  write(e: PendingEntry, sync = true): void {
    writeSync(this.fd, JSON.stringify(e) + '\n');
    if (sync) fsyncSync(this.fd);
  }

  /** Everything written is in the table: empty the file (O_APPEND: later writes start at 0). */
  clear(): void {
    ftruncateSync(this.fd, 0);
  }

  close(removeIfEmpty: boolean): void {
    closeSync(this.fd);
    if (removeIfEmpty) {
      try {
        unlinkSync(this.file);
      } catch {
        /* already gone */
      }
    }
  }
}
