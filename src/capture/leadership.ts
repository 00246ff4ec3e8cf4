/**
 * Capture leadership (docs/adr/0034-standby-capture.md): at most one capture process of a pipeline
 * reads its source and produces; others stand by. The lock is the source database's own (PostgreSQL:
 * a session advisory lock; see the connector), held on a dedicated connection for the capture's
 * life: the server releases it the moment that connection dies (kill -9 of the holder), so a standby
 * polling for it takes over within its poll interval plus the start steps. No home-made clustering.
 *
 *  - acquireLeadership() is called by Capture.run() before anything that writes (slot, snapshot,
 *    publication, producing). It resolves with the held lock, or null when the capture was stopped
 *    while standing by.
 *  - A lock whose connection is lost while held calls onLost: the capture stops producing at once and
 *    fails its stage with a retriable error; the supervisor starts it again, as a standby or leader.
 */
import type { Logger } from 'pino';
import { errorMessage, retriable } from '../core/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LeaderLock {
  /** What is locked, for logs ("advisory lock 123 on pg:5432/app"). */
  readonly name: string;
  /** How often a standby tries again (ms). */
  readonly pollMs: number;
  /** One try: true when this process holds the lock now. Throws when the server cannot be reached. */
  tryAcquire(): Promise<boolean>;
  /** Who holds the lock now, best effort (pid, application name, client address), for the standby's log line. */
  holder(): Promise<Record<string, unknown> | undefined>;
  /** Called (once) when the lock's connection is lost while the lock is held. */
  onLost(cb: (err: Error) => void): void;
  /** Release the lock and close its connection. Safe to call twice or before tryAcquire(). */
  release(): Promise<void>;
}

export interface LeadershipHooks {
  log: Logger;
  stopped: () => boolean;
  /** This capture stands by (the lock is held elsewhere); `holder` as holder() said. */
  standby?: (holder: Record<string, unknown> | undefined) => void;
  /** This capture holds the lock. */
  leader?: () => void;
}

/** Poll for the lock until it is held (resolves true) or the capture is stopped (false). */
export async function acquireLeadership(lock: LeaderLock, hooks: LeadershipHooks): Promise<boolean> {
  let since: number | undefined;
  for (;;) {
    if (hooks.stopped()) return false;
    if (await lock.tryAcquire()) {
      if (since !== undefined) hooks.log.info({ lock: lock.name, waitedMs: Date.now() - since }, 'capture.leader: took the capture lock over; starting (the previous holder is gone)');
      else hooks.log.info({ lock: lock.name }, 'capture.leader: holding the capture lock');
      hooks.leader?.();
      return true;
    }
    if (since === undefined) {
      since = Date.now();
      const holder = await lock.holder().catch((err) => ({ unknown: errorMessage(err) }));
      hooks.log.info({ lock: lock.name, holder, pollMs: lock.pollMs }, 'capture.standby: another capture process holds this pipeline\'s source; standing by until it goes away');
      hooks.standby?.(holder);
    }
    await sleep(lock.pollMs);
  }
}

/**
 * A lock held by one connection of its own (PostgreSQL session advisory lock, MariaDB user lock):
 * what the two share — the connection made once and kept, the lock marked lost when that connection
 * errors or ends while held (onLost called once, retriable CAPTURE_LOCK_LOST), a query every poll
 * interval while held (a dead TCP peer is not always seen by the socket), release by ending the
 * connection. A connector gives how to connect, try the lock, ping, close and name the holder.
 */
export abstract class ConnectionLeaderLock<C> implements LeaderLock {
  private conn?: C;
  private held = false;
  private released = false;
  private lost?: (err: Error) => void;
  private check?: NodeJS.Timeout;

  constructor(readonly name: string, readonly pollMs: number, protected readonly pipeline: string) {}

  /** A new connection whose 'error' and 'end' call `dropped`. */
  protected abstract connect(dropped: (err: Error) => void): Promise<C>;
  /** One try of the lock on `conn` (errors classified by the connector). */
  protected abstract tryLock(conn: C): Promise<boolean>;
  protected abstract ping(conn: C): Promise<unknown>;
  /** Close `conn` (ending the session releases the lock); `hard`: it is already broken. */
  protected abstract close(conn: C, hard: boolean): Promise<void>;
  abstract holder(): Promise<Record<string, unknown> | undefined>;

  protected async connection(): Promise<C> {
    if (this.conn) return this.conn;
    return (this.conn = await this.connect((err) => this.dropped(err)));
  }

  private dropped(err: Error): void {
    this.conn = undefined;
    clearInterval(this.check);
    if (!this.held || this.released) return;
    this.held = false;
    const cb = this.lost;
    this.lost = undefined;
    cb?.(retriable('CAPTURE_LOCK_LOST', `pipeline ${this.pipeline}: the connection holding the capture lock (${this.name}) was lost (${errorMessage(err)}); capture stops and tries to lead again`, err));
  }

  async tryAcquire(): Promise<boolean> {
    const conn = await this.connection();
    let got: boolean;
    try {
      got = await this.tryLock(conn);
    } catch (err) {
      // The connection may be broken: the next try makes a new one.
      if (this.conn === conn) this.conn = undefined;
      await this.close(conn, true).catch(() => undefined);
      throw err;
    }
    if (got && !this.held) {
      this.held = true;
      this.check = setInterval(() => {
        this.ping(conn).catch((err: Error) => {
          this.dropped(err);
          this.close(conn, true).catch(() => undefined);
        });
      }, Math.max(this.pollMs, 200));
      this.check.unref?.();
    }
    return got;
  }

  onLost(cb: (err: Error) => void): void {
    this.lost = cb;
  }

  async release(): Promise<void> {
    this.released = true;
    clearInterval(this.check);
    const conn = this.conn;
    this.conn = undefined;
    this.held = false;
    if (conn !== undefined) await this.close(conn, false).catch(() => undefined);
  }
}
