/**
 * Lag of a polling source (the SourceMonitor's `lag`, exported as `syncline_source_lag_seconds`).
 *
 * A poll source has no log to measure bytes in. What it can say honestly is how old its newest
 * complete picture is: every change committed before the start of the last pass that Kafka holds
 * whole (acknowledged) has been read, so `lagSeconds` = now − that pass's start. It grows while a
 * pass runs or waits for its interval, and drops to the last pass's duration when the next one is
 * acknowledged (with `intervalMs: 5000` it saws between the pass time and 5 s + the pass time). Not
 * covered by the bound: a timestamp-tracked row whose transaction commits later than its column's
 * value plus the overlap window (src/capture/poll/README.md says what each mode can see).
 *
 * The pass clock is in-process: the PollSource records each acknowledged pass here, and the monitor
 * of the same process reads it (the metrics are served by the process that runs the capture). A
 * monitor in a process without that capture (`syncline status` elsewhere) answers null: unknown.
 */
import type { SourceLag, SourceMonitor } from '../source.js';

interface PassClock {
  /** The last acknowledged pass's start and end (epoch ms). */
  startedMs: number;
  endedMs: number;
}

const clocks = new Map<string, PassClock>();

/** A pass of `streamId` that started at `startedMs` is acknowledged (Kafka holds all of it). */
export function passAcknowledged(streamId: string, startedMs: number, endedMs = Date.now()): void {
  const prev = clocks.get(streamId);
  if (!prev || startedMs >= prev.startedMs) clocks.set(streamId, { startedMs, endedMs });
}

/** The source stopped: its clock goes (a monitor then answers null, as for a capture elsewhere). */
export function pollStopped(streamId: string): void {
  clocks.delete(streamId);
}

export function pollLag(streamId: string, now = Date.now()): SourceLag | null {
  const c = clocks.get(streamId);
  if (!c) return null;
  return { lagBytes: null, retainedBytes: null, active: true, lagSeconds: Math.max(0, (now - c.startedMs) / 1000) };
}

/** A ping monitor of a poll source with the pass-clock lag of `streamId`. */
export function pollMonitor(ping: SourceMonitor, streamId: string): SourceMonitor {
  return { ping: () => ping.ping(), lag: async () => pollLag(streamId), close: () => ping.close() };
}
