/**
 * A keyed write load whose effect on the target can be checked write by write (the scale-out and
 * broker-loss tests): table `items (id, seq, v)`; client c writes only the keys ≡ c (mod clients),
 * so each key's writes are in one client's order, and every insert or update of a key raises its
 * `seq` (kept across deletes: a re-insert continues it). A trigger on the target logs every row
 * write (id, op, seq) in commit order; `writeLogProblems` then finds a key whose writes went out of
 * order or were applied twice (an insert/update whose seq is not above the key's previous one, a
 * delete below it).
 */
import type pg from 'pg';
import { checksum, sleep, sql } from './helpers.js';

export const ITEMS_DDL = `create table items (id int primary key, seq int not null, v text not null)`;

/** The items table on the target with its write log. */
export async function createLoggedTarget(db: string): Promise<void> {
  await sql(db, `${ITEMS_DDL};
    create table write_log (n bigserial primary key, id int not null, op text not null, seq int not null);
    create function log_write() returns trigger language plpgsql as $$ begin
      if tg_op = 'DELETE' then insert into write_log (id, op, seq) values (old.id, 'D', old.seq); return old; end if;
      insert into write_log (id, op, seq) values (new.id, left(tg_op, 1), new.seq); return new; end $$;
    create trigger log_write after insert or update or delete on items for each row execute function log_write();`);
}

/** Whether the target's items equal the source's (a waitFor condition). */
export const itemsEqual = (env: { sourceDb: string; targetDb: string }) => async (): Promise<boolean> => {
  const [a, b] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
  return a.md5 === b.md5;
};

/** Writes out of order or twice, as `id: <op><seq> then <op><seq>` (empty: none), and how many writes were checked. */
export async function writeLogProblems(db: string): Promise<{ problems: string[]; writes: number }> {
  const log = (await sql(db, `select id, op, seq from write_log order by n`)).rows as { id: number; op: string; seq: number }[];
  const last = new Map<number, { op: string; seq: number }>();
  const problems: string[] = [];
  for (const w of log) {
    const prev = last.get(w.id);
    if (prev && (w.op === 'D' ? w.seq < prev.seq : w.seq <= prev.seq)) problems.push(`${w.id}: ${prev.op}${prev.seq} then ${w.op}${w.seq}`);
    last.set(w.id, w);
  }
  return { problems, writes: log.length };
}

/** `keys` rows in the source (seq 1), then `start(clients)` writes until `stop()`. */
export class KeyedWriter {
  private readonly seq = new Map<number, number>();
  private readonly present = new Set<number>();
  private stopping = false;
  private running: Promise<void>[] = [];
  /** Committed writes (inserts, updates, deletes). */
  writes = 0;

  constructor(private readonly src: pg.Pool, private readonly keys: number) {
    for (let id = 1; id <= keys; id++) {
      this.seq.set(id, 1);
      this.present.add(id);
    }
  }

  /** The source table with its rows, and the target's table with the write log. */
  async seed(targetDb: string): Promise<void> {
    await this.src.query(ITEMS_DDL);
    await this.src.query(`insert into items select g, 1, 'v' from generate_series(1, ${this.keys}) g`);
    await createLoggedTarget(targetDb);
  }

  start(clients: number, pauseMs = 3): void {
    this.stopping = false;
    this.running = Array.from({ length: clients }, (_, c) => this.client(c, clients, pauseMs));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  private async client(c: number, clients: number, pauseMs: number): Promise<void> {
    const mine = [...this.seq.keys()].filter((k) => k % clients === c);
    for (let i = 0; !this.stopping; i++) {
      const id = mine[(i * 7919) % mine.length]!;
      const next = this.seq.get(id)! + 1;
      if (!this.present.has(id)) {
        await this.src.query(`insert into items values ($1, $2, 're-inserted')`, [id, next]);
        this.present.add(id);
        this.seq.set(id, next);
      } else if (i % 11 === 5) {
        await this.src.query(`delete from items where id = $1`, [id]); // the delete carries the row's last seq
        this.present.delete(id);
      } else {
        await this.src.query(`update items set seq = $2, v = md5(random()::text) where id = $1`, [id, next]);
        this.seq.set(id, next);
      }
      this.writes++;
      await sleep(pauseMs);
    }
  }
}
