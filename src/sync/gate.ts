/**
 * Realtime windows: the sink applies only inside the pipeline's windows. Outside them the consumer
 * stage that writes the target is paused (kafkajs consumer.pause: it stays in its group, so no
 * rebalance and an immediate resume; the batch in flight finishes and commits; the backlog is
 * visible as syncline_consumer_lag_messages), and resumed when a window opens. Capture is not
 * touched: it keeps producing to Kafka and acknowledging the source, so the slot's WAL does not pile
 * up; the changes wait in Kafka (retention: kafka.retentionDays).
 *
 * Pausing the consumer rather than stopping the stage: a stopped stage leaves its group, the lag
 * metric loses its member, and starting it again means joining and a rebalance each window; a pause
 * costs nothing and keeps the stage's health and metrics as they are.
 *
 * Checked every `everyMs` (1 s) against the wall clock in the pipeline's time zone (./windows.ts),
 * so DST changes need no special handling; `now` is injectable.
 */
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { ConsumerStage } from '../process/processor.js';
import { inWindows, parseWindow, type SyncWindow } from './windows.js';

const gauges = new WeakMap<Registry, Gauge<'pipeline'>>();
function openGauge(registry: Registry): Gauge<'pipeline'> {
  let g = gauges.get(registry);
  if (!g) gauges.set(registry, (g = new Gauge({ name: 'syncline_sync_window_open', help: 'Realtime pipelines with windows: 1 while a window is open (the sink applies), 0 while paused.', labelNames: ['pipeline'], registers: [registry] })));
  return g;
}

export class WindowGate {
  private timer?: NodeJS.Timeout;
  private readonly windows: SyncWindow[];
  private open?: boolean;
  private readonly gauge: Gauge<'pipeline'>;

  constructor(private readonly o: { pipeline: string; /** An operator paused the pipeline (./pause.ts): an opening window does not resume it. */ held?: () => boolean; windows: string[]; timezone: string; stage: () => ConsumerStage | undefined; registry: Registry; log: Logger; now?: () => Date; everyMs?: number }) {
    this.windows = o.windows.map(parseWindow);
    this.gauge = openGauge(o.registry);
  }

  /** Is a window open now? */
  get isOpen(): boolean {
    return inWindows((this.o.now ?? (() => new Date()))(), this.windows, this.o.timezone);
  }

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), this.o.everyMs ?? 1000);
    this.timer.unref?.();
  }

  /** Pause or resume the consumer stage to match the windows (the stage may be a new object after a restart). */
  check(): void {
    const open = this.isOpen;
    const stage = this.o.stage();
    const apply = open && this.o.held?.() !== true;
    if (stage && stage.isPaused === apply) {
      if (apply) stage.resume();
      else stage.pause();
    }
    if (open !== this.open) {
      this.o.log.info({ pipeline: this.o.pipeline, windows: this.o.windows, timezone: this.o.timezone }, open ? 'sync.window.open: applying' : 'sync.window.closed: the sink pauses; changes wait in Kafka, capture goes on');
      this.open = open;
      this.gauge.set({ pipeline: this.o.pipeline }, open ? 1 : 0);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
