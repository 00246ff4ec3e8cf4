/**
 * Hash mode's memory of what it saw: per table, a list of key-range chunks (bounds, row count and
 * digest: small, kept in the capture offsets record with the pass it belongs to), and per chunk a file
 * of (key, content hash) pairs under <stateDir>/<stream id>/<table>/ that a pass reads only for a
 * chunk whose digest changed. Files are written once, named by the pass that wrote them
 * (`<pass>-<n>.json`), and deleted only when the acknowledged chunk list no longer names them, so a
 * crash at any point leaves the acknowledged list's files in place (later ones are swept at start).
 *
 * Example chunk: { lo: '["1000"]', hi: '["2000"]', count: 1000, digest: '576460752303423488000', file: '1796300000-3.json' }
 * (lo exclusive, hi inclusive, null for no bound; bounds are the key's raw driver values as tagged JSON).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface ChunkMeta {
  lo: string | null;
  hi: string | null;
  count: number;
  /** Sum of the first 15 hex digits of every row hash, decimal (what PollDialect.hashSum computes). */
  digest: string;
  file: string;
}

/** The digest of a chunk from its rows' hashes (the same number the database's hashSum gives). */
export function digestOf(hashes: Iterable<string>): string {
  let sum = 0n;
  for (const h of hashes) sum += BigInt('0x' + h.slice(0, 15));
  return sum.toString();
}

export class ChunkFiles {
  constructor(readonly dir: string) {}

  private path(file: string): string {
    return join(this.dir, file);
  }

  exists(file: string): boolean {
    return existsSync(this.path(file));
  }

  /** key (tagged JSON of the raw key values) → row hash. */
  read(file: string): Map<string, string> {
    const entries = JSON.parse(readFileSync(this.path(file), 'utf8')) as [string, string][];
    return new Map(entries);
  }

  write(file: string, entries: [string, string][]): void {
    mkdirSync(this.dir, { recursive: true });
    const tmp = this.path(file + '.tmp');
    writeFileSync(tmp, JSON.stringify(entries));
    renameSync(tmp, this.path(file));
  }

  /** Delete every file the chunk lists do not name (written by a pass that was never acknowledged, or replaced). */
  keepOnly(files: ReadonlySet<string>): number {
    let n = 0;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return 0;
    }
    for (const f of names) {
      if (files.has(f)) continue;
      rmSync(this.path(f), { force: true });
      n++;
    }
    return n;
  }

  removeAll(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
