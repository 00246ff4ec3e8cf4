/**
 * Waiting for dependencies that are not ready yet, for the Runtime.
 *
 *  - `untilReady(what, fn)`: one start step (connect Redis, connect a target, create the apply
 *    topic) tried until it succeeds.
 *  - `superviseStage(...)`: a stage task (capture, a consumer stage) started, and started again
 *    (a new task object each time) after a retriable error, whether it failed while starting or
 *    while running.
 *
 * Both: an error that is a dependency not being ready (errors.ts retriable, or a network error;
 * dependencies.ts `awaitable`) is logged once per dependency (DependencyWaits) and retried after
 * the retry policy's delay (backoffDelay; the policy's retries count does not apply); fatal,
 * poison and unclassified errors are thrown at once. A start has a deadline (startTimeoutMs):
 * when it passes before the step succeeded or the stage is running, the dependency's last error is
 * thrown (startDeadlineError) and the Runtime stops the process. A stage that was running and
 * failed gets a new deadline for its new start. Nothing here is persisted.
 */
import type { RetryConfig } from './core/config/schema.js';
import { awaitable, dependencyOf, startDeadlineError, type Dependency, type DependencyAddresses, type DependencyWaits } from './core/dependencies.js';
import { errorCode, type SynclineError } from './core/errors.js';
import { backoffDelay } from './core/retry.js';

export interface WaitContext {
  waits: DependencyWaits;
  addresses: DependencyAddresses;
  /** The start deadline's length (startTimeoutMs, or its env override). */
  startTimeoutMs: number;
  /** Absolute time of the process start's deadline. */
  deadline: number;
  retry: RetryConfig;
  /** True once the Runtime stops: waiting ends, nothing more is tried. */
  stopping: () => boolean;
  /** Waits `ms`, or less when the Runtime stops meanwhile. */
  pause: (ms: number) => Promise<void>;
}

/** The dependency an awaitable error is about (one the log can name), or one named by its code. */
export function awaitedOf(err: unknown, addresses: DependencyAddresses): Dependency {
  return dependencyOf(err, addresses) ?? { kind: 'other', key: `other ${errorCode(err)}`, name: `a dependency (${errorCode(err)})` };
}

/**
 * Races `p` with the deadline; on expiry (unless `exempt()` then holds) rejects with what
 * `onExpiry` builds. `p` is not cancelled.
 */
function beforeDeadline<T>(p: Promise<T>, deadline: number, onExpiry: () => SynclineError, exempt: () => boolean = () => false): { promise: Promise<T>; expired: () => boolean; clear: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let fired = false;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (exempt()) return;
      fired = true;
      reject(onExpiry());
    }, Math.max(0, deadline - Date.now()));
  });
  return { promise: Promise.race([p, expiry]), expired: () => fired, clear: () => clearTimeout(timer) };
}

/**
 * Run one start step until it succeeds, waiting for the dependency it needs (see the header).
 * `what` names the step for the log ("pipeline orders-sync target", "Redis").
 */
export async function untilReady<T>(ctx: WaitContext, what: string, fn: () => Promise<T>): Promise<T> {
  const awaited = new Map<string, Dependency>();
  let last: unknown;
  for (let attempt = 1; ; attempt++) {
    if (Date.now() >= ctx.deadline) throw startDeadlineError(last, ctx.startTimeoutMs, what, ctx.waits.awaited());
    const run = beforeDeadline(fn(), ctx.deadline, () => startDeadlineError(last, ctx.startTimeoutMs, what, ctx.waits.awaited()));
    try {
      const value = await run.promise;
      for (const d of awaited.values()) ctx.waits.ready(d);
      return value;
    } catch (err) {
      if (run.expired() || ctx.stopping() || !awaitable(err)) throw err;
      last = err;
      const dep = awaitedOf(err, ctx.addresses);
      awaited.set(dep.key, dep);
      ctx.waits.waiting(dep, err, what);
      await ctx.pause(Math.min(backoffDelay(ctx.retry, attempt), Math.max(0, ctx.deadline - Date.now())));
      if (ctx.stopping()) throw err;
    } finally {
      run.clear();
    }
  }
}

/** A stage task: run() resolves when it stops cleanly, rejects when it fails; stop() ends it. */
export interface StageTask {
  run(): Promise<void>;
  stop(): Promise<void>;
}

export interface StageHooks {
  /** Tells the health state and metrics: a new task starts, is running, waits after an error. */
  starting(): void;
  waiting(err: unknown): void;
}

/**
 * Run a stage, starting it again after awaitable errors (see the header). `make(running)` builds a
 * new task; the task calls `running()` once it is started (joined its group, began its snapshot
 * or stream). Resolves when a task stops cleanly or the Runtime stops; rejects with a
 * non-awaitable error, or with the last error when a start's deadline passed.
 */
export async function superviseStage(ctx: WaitContext, what: string, make: (running: () => void) => StageTask, hooks: StageHooks): Promise<void> {
  let deadline = ctx.deadline;
  let last: unknown;
  let failures = 0;
  const awaited = new Map<string, Dependency>();
  for (;;) {
    let up = false;
    const task = make(() => {
      if (up) return;
      up = true;
      failures = 0;
      last = undefined;
      for (const d of awaited.values()) ctx.waits.ready(d);
      awaited.clear();
    });
    hooks.starting();
    // The deadline only bounds a start: once the task is running it no longer applies.
    const run = beforeDeadline(task.run(), deadline, () => startDeadlineError(last, ctx.startTimeoutMs, what, ctx.waits.awaited()), () => up);
    try {
      await run.promise;
      return;
    } catch (err) {
      if (ctx.stopping()) return;
      if (run.expired()) {
        await task.stop().catch(() => undefined);
        throw err;
      }
      if (!awaitable(err)) throw err;
      if (up) deadline = Date.now() + ctx.startTimeoutMs; // it ran: a new start, with a deadline of its own
      last = err;
      const dep = awaitedOf(err, ctx.addresses);
      awaited.set(dep.key, dep);
      ctx.waits.waiting(dep, err, what);
      hooks.waiting(err);
      await task.stop().catch(() => undefined);
      await ctx.pause(Math.min(backoffDelay(ctx.retry, ++failures), Math.max(0, deadline - Date.now())));
      if (ctx.stopping()) return;
      if (Date.now() >= deadline) throw startDeadlineError(last, ctx.startTimeoutMs, what, ctx.waits.awaited());
    } finally {
      run.clear();
    }
  }
}
