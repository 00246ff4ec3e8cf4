/**
 * Custom transform functions (`transform: [{ custom: { module, function, timeoutMs } }]`) run in a
 * worker thread, one per (module, function, timeout), loaded once when the processor starts.
 *
 * Why a worker: a synchronous function cannot be interrupted in the thread that runs it (an endless
 * loop would stop the whole processor, heartbeats included), and a timeout around an async call only
 * stops waiting, it does not stop the work. A worker can be terminated: a call that outlasts
 * `timeoutMs` terminates it, the change is dead-lettered (TRANSFORM_TIMEOUT) and the next call gets
 * a fresh worker (the module is loaded again). Calls are queued and sent one at a time, so a timeout
 * only ever concerns the call that ran; its clock starts when the call is sent.
 *
 * Values cross the thread boundary by structured clone: bigint stays bigint, a Buffer arrives as a
 * Uint8Array (and a Uint8Array returned becomes a Buffer again).
 */
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { poison, SynclineError } from '../../core/errors.js';

/** The worker: imports the module once, then answers { id, change } with { id, result } or { id, error }. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
let fn;
import(workerData.url).then((mod) => {
  fn = mod[workerData.fn];
  if (typeof fn !== 'function') {
    const exported = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
    parentPort.postMessage({ loaded: false, error: workerData.fn + ' is not a function exported by the module (it exports ' + (exported.length ? exported.join(', ') : 'no functions') + ')' });
    return;
  }
  parentPort.postMessage({ loaded: true });
}, (err) => parentPort.postMessage({ loaded: false, error: String(err && err.message || err).split('\\n')[0] }));
parentPort.on('message', async ({ id, change }) => {
  try {
    const result = await fn(change);
    parentPort.postMessage({ id, result: result === undefined ? null : result });
  } catch (err) {
    let message;
    try { message = err instanceof Error ? err.name + ': ' + err.message : 'threw ' + String(err); } catch { message = 'threw a value that cannot be shown'; }
    try { parentPort.postMessage({ id, error: message }); } catch (e) { parentPort.postMessage({ id, error: message }); }
  }
});
`;

interface Call {
  change: unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class CustomTransformRunner {
  private worker?: Worker;
  private loaded?: Promise<void>;
  private readonly queue: Call[] = [];
  private running?: { id: number; call: Call; timer?: NodeJS.Timeout };
  private nextId = 1;
  /** Workers started (the first, and one after each timeout or crash). */
  starts = 0;
  private closed = false;

  constructor(
    readonly modulePath: string,
    readonly fn: string,
    readonly timeoutMs: number,
    /** Where the step is, for errors: 'step 3 (custom ./t.mjs#transform)'. */
    readonly label: string,
  ) {}

  /** Start the worker and load the module; rejects (fatal) when it cannot load or lacks the function. */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new SynclineError('fatal', 'TRANSFORM_CLOSED', `${this.label}: the transform runner was closed`));
    if (this.loaded) return this.loaded;
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { url: pathToFileURL(this.modulePath).href, fn: this.fn } });
    w.unref(); // a worker never keeps the process alive
    this.worker = w;
    this.starts++;
    this.loaded = new Promise<void>((resolve, reject) => {
      w.on('message', (m: { loaded?: boolean; error?: string; id?: number; result?: unknown }) => {
        if (m.loaded === true) return resolve();
        if (m.loaded === false) {
          reject(new SynclineError('fatal', 'TRANSFORM_LOAD', `${this.label}: cannot load transform module ${this.modulePath}: ${m.error}`));
          void w.terminate();
          return;
        }
        this.answered(w, m.id!, m.error, m.result);
      });
      w.on('error', (err) => {
        // An error outside a call (a throw in a timer of the module): the worker is gone.
        reject(new SynclineError('fatal', 'TRANSFORM_LOAD', `${this.label}: transform module ${this.modulePath} failed: ${err.message}`));
        this.lost(w, `the worker failed: ${err.message}`);
      });
      w.on('exit', (code) => {
        // Exited while loading (process.exit in the module): the load fails (nothing if it had loaded).
        reject(new SynclineError('fatal', 'TRANSFORM_LOAD', `${this.label}: transform module ${this.modulePath} exited (code ${code}) while loading`));
        this.lost(w, 'the worker exited');
      });
    });
    this.loaded.catch(() => undefined);
    return this.loaded;
  }

  /** Run the function on a change; rejects with a poison error on a throw or a timeout. */
  call(change: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running || this.queue.length === 0 || this.closed) return;
    const call = this.queue.shift()!;
    // Taken at once, before the worker is ready: a second pump meanwhile must wait for this call
    // (two calls sent together would share one timer: the first, if it hung, would never settle).
    const id = this.nextId++;
    this.running = { id, call };
    this.ready().then(
      () => {
        if (this.running?.id !== id) return; // closed meanwhile
        // The verdict waits one turn of the event loop: when the loop was busy past the deadline, an
        // answer that arrived in time is still waiting behind the timer (timers run before I/O).
        this.running.timer = setTimeout(() => setImmediate(() => this.timedOut(id)), this.timeoutMs);
        try {
          this.worker!.postMessage({ id, change: call.change });
        } catch (err) {
          this.finish(id);
          call.reject(poison('TRANSFORM_FAILED', `${this.label}: the change cannot be handed to the transform: ${(err as Error).message}`));
        }
      },
      (err) => {
        this.finish(id);
        call.reject(err);
      },
    );
  }

  private finish(id: number): Call | undefined {
    const r = this.running;
    if (!r || r.id !== id) return undefined;
    clearTimeout(r.timer);
    this.running = undefined;
    queueMicrotask(() => this.pump());
    return r.call;
  }

  private answered(w: Worker, id: number, error: string | undefined, result: unknown): void {
    if (w !== this.worker) return;
    const call = this.finish(id);
    if (!call) return;
    if (error !== undefined) call.reject(poison('TRANSFORM_FAILED', `${this.label} threw: ${error}`));
    else call.resolve(result);
  }

  private timedOut(id: number): void {
    const call = this.finish(id);
    if (!call) return;
    this.replaceWorker();
    call.reject(poison('TRANSFORM_TIMEOUT', `${this.label} took longer than ${this.timeoutMs} ms (stopped; the worker was replaced)`));
  }

  /** The worker exited or failed while a call ran: that call fails, the next gets a new worker. */
  private lost(w: Worker, why: string): void {
    if (w !== this.worker) return;
    this.worker = undefined;
    this.loaded = undefined;
    const r = this.running;
    // A call still waiting for the worker to load fails with the load's own error (ready()).
    if (r?.timer) {
      this.finish(r.id);
      r.call.reject(poison('TRANSFORM_FAILED', `${this.label}: ${why} during the call`));
    }
  }

  private replaceWorker(): void {
    const w = this.worker;
    this.worker = undefined;
    this.loaded = undefined;
    if (w) void w.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    const closed = () => new SynclineError('retriable', 'TRANSFORM_CLOSED', `${this.label}: the transform runner was closed`);
    const r = this.running;
    if (r) this.finish(r.id)?.reject(closed());
    for (const c of this.queue.splice(0)) c.reject(closed());
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
