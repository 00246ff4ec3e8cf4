/**
 * The pass loop of a listing source (a source that reads its whole input, or what changed in it, once
 * per pass: connectors/http/source/, connectors/file/source/), the part that is the same whatever is
 * listed (ADR 0015 rules, ADR 0023, ADR 0025):
 *
 *  - A pass is one transaction: its changes at N/1, N/2, … (`next(ctx, false)`), snapshot rows at N/0
 *    (`next(ctx, true)`), the pass ends at N/FFFFFFFF. `confirmed` only holds whole passes;
 *    `position()` is the end of the next complete pass, so scheduled and manual runs (src/sync/) end
 *    once a whole pass started after them is in Kafka.
 *  - Pass numbers grow: max(last acknowledged + 1, last begun + 1, seconds since the epoch). "begun"
 *    is stored (`begin(ctx)`) before a pass's first change or dead letter reaches Kafka, so a pass cut
 *    short by a crash (kill -9) is never numbered again and the stage's resume dedup cannot hide a
 *    later pass's changes.
 *  - Durable state, the capture offsets record `streamId`: `position` and `state` = { pass, begun,
 *    tables }, written after Kafka acknowledged the pass (and at stop). The per-table state is the
 *    source's own (`T`). A crash reads again from the previous acknowledged pass.
 *
 * The source keeps its own listing code: `pass(ctx)` reads every table once, calling `begin(ctx)`
 * before each change or dead letter, and returns the tables' state for the next pass.
 */
import type { Logger } from 'pino';
import type { CaptureHandler, CaptureOffset } from '../source.js';
import { bigIntToPosition, positionToBigInt } from '../../core/envelope.js';
import { errorMessage, fatal, SynclineError } from '../../core/errors.js';
import { passAcknowledged, pollStopped } from './lag.js';

export const PASS_END = 0xffffffff;

/** Pass `pass`, change `seq` → the 'X/Y' position of a change (seq 0: snapshot rows). */
export const passPosition = (pass: number, seq: number): string => bigIntToPosition((BigInt(pass) << 32n) | BigInt(seq));

export interface PassState<T> {
  pass: number;
  begun: number;
  tables: Record<string, T>;
}

export interface PassCtx {
  n: number;
  seq: number;
  startedMs: number;
  begun: boolean;
  emitted: number;
  /**
   * An earlier pass handed changes on and was never acknowledged (killed, or Kafka failed it): what it
   * sent may be in Kafka and applied (a delete of a record a shifting page did not show), while the
   * stored state is the pass before it. This pass emits every record it reads, unchanged ones too
   * (the sink's hash delta skips what the target already holds), never "unchanged, so nothing to send".
   */
  resend: boolean;
}

/** Thrown inside a pass once the source is stopping: the pass is abandoned (read again next time). */
export class PassStopped extends Error {}

export interface PassLoopOptions<T> {
  streamId: string;
  intervalMs: number;
  log: Logger;
  /** The tables of the offsets record (for `syncline status`). */
  tables: () => string[];
  /** The stored state → the state to resume from (tables whose settings changed or whose files are lost left out). */
  restore: (stored: PassState<T>) => PassState<T>;
  /** One pass: every table read once; returns their state for the next pass. */
  pass: (ctx: PassCtx) => Promise<Record<string, T>>;
  /** After a pass is acknowledged and stored (release what the previous state held). */
  acknowledged?: (state: PassState<T>, ctx: PassCtx) => void;
  /** A non-classified failure → the error the capture stage gets. */
  failed: (err: unknown) => SynclineError;
}

export class PassLoop<T> {
  state: PassState<T> = { pass: 0, begun: 0, tables: {} };
  stopping = false;
  private handler?: CaptureHandler;
  private acked = 0n;
  private inPass = 0;
  /** The pass a bounded run waits for (position()): passes follow each other without the interval until it is done. */
  private wanted = 0;
  private wake?: () => void;
  private loop?: Promise<void>;
  private storing: Promise<void> = Promise.resolve();
  private firstPass = '';
  private lastStore = 0;
  private markRestored!: () => void;
  private readonly restored = new Promise<void>((resolve) => (this.markRestored = resolve));
  /** Since start: passes acknowledged, changes handed on. */
  readonly stats = { passes: 0, changes: 0 };

  constructor(private readonly o: PassLoopOptions<T>) {}

  get confirmed(): string {
    return this.acked === 0n ? '' : bigIntToPosition(this.acked);
  }

  async position(): Promise<string> {
    await this.restored;
    const base = this.inPass > 0 ? this.inPass : Math.max(this.state.pass, this.state.begun);
    // A bounded run waits for that pass: it starts as soon as the running one ends (or now), not after intervalMs.
    if (base + 1 > this.wanted) this.wanted = base + 1;
    this.wake?.();
    return passPosition(base + 1, PASS_END);
  }

  /** Source.run: stored state, resume, then passes until stopped. */
  async run(handler: CaptureHandler): Promise<void> {
    this.handler = handler;
    const stored = await handler.offsets.read(this.o.streamId);
    const s = (stored?.state ?? null) as PassState<T> | null;
    if (stored?.position) this.acked = positionToBigInt(stored.position);
    this.firstPass = stored?.consistentPoint ?? '';
    if (s) {
      this.state = this.o.restore({ pass: s.pass ?? 0, begun: s.begun ?? 0, tables: s.tables ?? {} });
      this.o.log.info({ stream: this.o.streamId, pass: this.state.pass, position: this.confirmed }, 'capture.resume');
    }
    this.markRestored();
    handler.running();
    if (stored) await handler.resuming();
    this.loop = this.passes();
    await this.loop;
  }

  private async passes(): Promise<void> {
    try {
      while (!this.stopping) {
        await this.pass();
        if (this.stopping) break;
        if (this.wanted > this.state.pass) continue; // a run asked for a later pass (position())
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.o.intervalMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    } catch (err) {
      if (err instanceof PassStopped) return;
      if (err instanceof SynclineError) throw err;
      throw this.o.failed(err);
    } finally {
      this.inPass = 0;
    }
  }

  private async pass(): Promise<void> {
    const handler = this.handler!;
    const n = Math.max(this.state.pass + 1, this.state.begun + 1, Math.floor(Date.now() / 1000));
    this.inPass = n;
    const ctx: PassCtx = { n, seq: 0, startedMs: Date.now(), begun: false, emitted: 0, resend: this.state.begun > this.state.pass };
    handler.begin({});
    const tables = await this.o.pass(ctx);
    const end = passPosition(n, PASS_END);
    handler.commit(end);
    await handler.flush();
    if (this.acked < positionToBigInt(end)) {
      if (this.stopping) throw new PassStopped();
      return; // not acknowledged: the pass is read again
    }
    this.state = { pass: n, begun: Math.max(this.state.begun, n), tables };
    passAcknowledged(this.o.streamId, ctx.startedMs);
    this.stats.passes++;
    this.stats.changes += ctx.emitted;
    if (!this.firstPass) this.firstPass = end;
    this.inPass = 0;
    if (ctx.emitted > 0 || Date.now() - this.lastStore >= 1000) await this.store();
    this.o.acknowledged?.(this.state, ctx);
    this.o.log.debug({ pass: n, changes: ctx.emitted, ms: Date.now() - ctx.startedMs }, 'poll.pass.done');
  }

  /** Before the pass's first change or dead letter reaches Kafka, its number is recorded as used. */
  async begin(ctx: PassCtx): Promise<void> {
    if (this.stopping) throw new PassStopped();
    if (ctx.begun) return;
    ctx.begun = true;
    if (ctx.n > this.state.begun) {
      this.state.begun = ctx.n;
      await this.store();
    }
  }

  /** The position of the pass's next change (a snapshot row: N/0; otherwise N/1, N/2, …). */
  next(ctx: PassCtx, snapshot: boolean): string {
    return snapshot ? passPosition(ctx.n, 0) : passPosition(ctx.n, ++ctx.seq);
  }

  acknowledge(end: string): void {
    const p = positionToBigInt(end);
    if (p > this.acked) this.acked = p;
  }

  private store(): Promise<void> {
    const handler = this.handler!;
    this.lastStore = Date.now();
    const record: CaptureOffset = {
      slot: this.o.streamId,
      snapshot: this.state.pass > 0 ? 'done' : 'started',
      consistentPoint: this.firstPass,
      tables: this.o.tables(),
      at: new Date().toISOString(),
      position: this.confirmed,
      state: JSON.parse(JSON.stringify(this.state)) as Record<string, unknown>,
    };
    const write = this.storing.then(() => handler.offsets.write(record));
    this.storing = write.catch(() => undefined);
    return write;
  }

  async quiesce(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    if (this.loop) await Promise.race([this.loop.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    pollStopped(this.o.streamId);
    const last = this.handler && this.state.pass > 0 ? this.store().catch(() => undefined) : this.storing;
    await Promise.race([last, new Promise((r) => setTimeout(r, 5000))]);
  }
}

/** The default `failed`: an unclassified error of a pass stops the capture naming the source. */
export const passFailed = (code: string, what: string) => (err: unknown): SynclineError => fatal(code, `${what}: ${errorMessage(err)}`, err);
