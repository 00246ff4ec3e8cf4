/**
 * CPU time of every process an end-to-end run keeps busy, from /proc/<pid>/stat (utime + stime),
 * so that the benchmark says where the machine's CPUs go per change: the syncline processes, and
 * the PostgreSQL, Redis and Kafka work they cause. Linux only (elsewhere: no samples, no table).
 *
 * A sample is taken when the run's children have started and another just before they are
 * stopped; a process started in between (the walsender, the sink's target connections) counts from
 * zero, one that ended in between is missed (none of the roles below ends during a run).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface CpuSample {
  /** CPU ticks and role by pid, for the processes with a role. */
  byPid: Map<number, { ticks: number; role: string }>;
}

/** Roles, in the order the table lists them. */
export const CPU_ROLES = [
  'syncline (one process)', 'syncline capture', 'syncline process+sink',
  'PostgreSQL walsender (source)', 'PostgreSQL target connections', 'PostgreSQL other',
  'Redis', 'Kafka broker', 'schema registry',
] as const;

let tick: number | undefined;
/** Clock ticks per second (`getconf CLK_TCK`, 100 when it cannot be read). */
export function clockTicks(): number {
  if (tick === undefined) {
    try {
      tick = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      tick = 100;
    }
  }
  return tick;
}

/**
 * `children`: the syncline children of the run by pid and role; `targetDb`: the target database
 * (its backends are the sink's connections).
 */
export function sampleCpu(children: Map<number, string>, targetDb: string): CpuSample {
  const byPid = new Map<number, { ticks: number; role: string }>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return { byPid };
  }
  for (const d of pids) {
    const pid = Number(d);
    let stat: string;
    let cmd: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // gone meanwhile
    }
    const role = children.get(pid) ?? roleOf(cmd, targetDb);
    if (!role) continue;
    // Fields after the parenthesised command: state is the 1st, utime the 12th, stime the 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    byPid.set(pid, { ticks: Number(f[11]) + Number(f[12]), role });
  }
  return { byPid };
}

function roleOf(cmd: string, targetDb: string): string | undefined {
  if (cmd.startsWith('postgres: ')) {
    if (cmd.includes('walsender')) return 'PostgreSQL walsender (source)';
    if (cmd.includes(` ${targetDb} `)) return 'PostgreSQL target connections';
    return 'PostgreSQL other';
  }
  if (cmd.startsWith('redis-server')) return 'Redis';
  if (cmd.includes('kafka.Kafka')) return 'Kafka broker';
  if (cmd.includes('apicurio-registry')) return 'schema registry';
  return undefined;
}

/** µs of CPU per change by role between two samples. */
export function cpuPerChange(before: CpuSample, after: CpuSample, changes: number): Record<string, number> {
  const usPerTick = 1e6 / clockTicks();
  const out: Record<string, number> = {};
  for (const [pid, a] of after.byPid) {
    const b = before.byPid.get(pid);
    const ticks = a.ticks - (b && b.role === a.role ? b.ticks : 0);
    out[a.role] = (out[a.role] ?? 0) + (ticks * usPerTick) / changes;
  }
  return out;
}
