/**
 * Benchmark 1, the capture limit: PostgreSQL's own client, pg_recvlogical, decoding the workload's
 * changes with pgoutput from a fresh slot into /dev/null. The walsender does the decoding; the client
 * only receives the bytes, so this is the ceiling for any PostgreSQL CDC tool on this machine.
 * Rate = changes / wall time from start to exit (it stops at --endpos, the LSN after the last commit;
 * its start-up, a few ms, is included, which only lowers the ceiling).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { PG, memoryOf, type Source, type Workload } from './common.js';

/** pg_recvlogical of the running server's major version (Debian keeps it out of PATH). */
export function pgRecvlogical(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => existsSync(`${base}/${v}/bin/pg_recvlogical`)).sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return `${base}/${versions[0]}/bin/pg_recvlogical`;
  }
  return 'pg_recvlogical';
}

export interface LimitRun {
  changes: number;
  seconds: number;
  perSec: number;
  peakMb: number;
}

export async function runCaptureLimit(src: Source, slot: string, w: Workload): Promise<LimitRun> {
  const args = ['-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-d', src.db, '--slot', slot, '--start', '--no-loop',
    '--endpos', w.endLsn, '-o', 'proto_version=1', '-o', `publication_names=${src.publication}`, '-f', '/dev/null', '-s', '1'];
  const t0 = process.hrtime.bigint();
  const child = spawn(pgRecvlogical(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let peak = 0;
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setInterval(() => {
    const m = memoryOf(child.pid!);
    if (m && m.hwmMb > peak) peak = m.hwmMb;
  }, 100);
  const code = await new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('exit', (c) => res(c));
  }).finally(() => clearInterval(timer));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`pg_recvlogical exited with ${code}: ${err.slice(-1000)}`);
  return { changes: w.changes, seconds, perSec: w.changes / seconds, peakMb: peak };
}
