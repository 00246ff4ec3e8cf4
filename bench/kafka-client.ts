/**
 * The Kafka client (issue 26): `@platformatic/kafka` (maintained, pure JS) against kafkajs 2.2.4
 * (no release since February 2023) as syncline runs it (src/core/kafkajs-patch.ts: its produce hot
 * spots replaced), in one process, the same messages, the same broker, alternating rounds:
 *   - produce: N messages (a 10-byte key, a 100-byte value: a narrow change's size) to a fresh topic of
 *     3 partitions, partitions set by the caller as capture does (kafkaPartition), batches of 1,000,
 *     idempotent, acks=all, each batch awaited before the next (capture's outbox does the same);
 *   - consume: those N messages from the beginning in a fresh group, every message looked at.
 * Messages/s and CPU µs per message of this process. @platformatic/kafka 1.35.0 is its newest release
 * for Node 20 (2.x needs Node ≥ 22.22). The rule: the default only if ≥ 1.3× on its stage.
 *
 *   npm run bench -- --only kafka-client [--client-messages N (200,000)] [--repeat K]
 *   npx tsx --import ./src/core/kafkajs-patch.ts bench/kafka-client.ts [--messages N] [--repeat K]      (prints only)
 */
import { kafkajsPatched, kafkaPartition } from '../src/core/kafkajs-patch.js'; // first: before kafkajs loads
import { randomBytes } from 'node:crypto';
import { Consumer, Producer } from '@platformatic/kafka';
import { BROKERS, createTopic, deleteTopics, e2eSectionFooter, figure, fmt, fmtFigure, kafka, ratio, runBenchCli, uid, withAdmin, type Figure } from './common.js';

export interface ClientFigures {
  produce: Figure;
  consume: Figure;
  /** CPU µs per message, by round. */
  produceCpu: Figure;
  consumeCpu: Figure;
}

export interface KafkaClientResult {
  messages: number;
  repeat: number;
  patched: boolean;
  kafkajs: ClientFigures;
  platformatic: ClientFigures;
  /** @platformatic/kafka ÷ kafkajs, messages/s. */
  produceRatio: Figure;
  consumeRatio: Figure;
}

/** Issue 26: @platformatic/kafka becomes the default only if it is at least this much faster on its stage. */
export const ADOPT_AT = 1.3;
const BATCH = 1000;
const PARTITIONS = 3;

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

interface Msg { key: Buffer; value: Buffer; partition: number }

async function timed(n: number, run: () => Promise<void>): Promise<{ perSec: number; cpuUs: number }> {
  const [t0, c0] = [Date.now(), cpuMs()];
  await run();
  return { perSec: (n * 1000) / Math.max(1, Date.now() - t0), cpuUs: ((cpuMs() - c0) * 1000) / n };
}

async function kafkajsRound(topic: string, msgs: Msg[]): Promise<{ produce: { perSec: number; cpuUs: number }; consume: { perSec: number; cpuUs: number } }> {
  const k = kafka();
  const p = k.producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  const produce = await timed(msgs.length, async () => {
    for (let i = 0; i < msgs.length; i += BATCH) await p.send({ topic, acks: -1, messages: msgs.slice(i, i + BATCH) });
  });
  await p.disconnect();
  const c = k.consumer({ groupId: `bench-${uid()}`, maxWaitTimeInMs: 100 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let bytes = 0;
  const consume = await timed(msgs.length, () => new Promise<void>((resolve, reject) => {
    c.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) bytes += m.value?.length ?? 0;
        seen += batch.messages.length;
        if (seen >= msgs.length) resolve();
      },
    }).catch(reject);
  }));
  await c.disconnect();
  if (bytes === 0) throw new Error('kafka-client: kafkajs consumed no bytes');
  return { produce, consume };
}

async function platformaticRound(topic: string, msgs: Msg[]): Promise<{ produce: { perSec: number; cpuUs: number }; consume: { perSec: number; cpuUs: number } }> {
  const p = new Producer({ clientId: 'syncline-bench', bootstrapBrokers: BROKERS, idempotent: true, acks: -1 });
  const produce = await timed(msgs.length, async () => {
    for (let i = 0; i < msgs.length; i += BATCH) await p.send({ messages: msgs.slice(i, i + BATCH).map((m) => ({ topic, key: m.key, value: m.value, partition: m.partition })) });
  });
  await p.close();
  const c = new Consumer({ clientId: 'syncline-bench', groupId: `bench-${uid()}`, bootstrapBrokers: BROKERS });
  const stream = await c.consume({ topics: [topic], mode: 'earliest', autocommit: false, maxWaitTime: 100 });
  let seen = 0;
  let bytes = 0;
  const consume = await timed(msgs.length, () => new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('data', (m: { value?: Buffer }) => {
      bytes += m.value?.length ?? 0;
      if (++seen >= msgs.length) resolve();
    });
  }));
  await stream.close();
  await c.close();
  if (bytes === 0) throw new Error('kafka-client: @platformatic/kafka consumed no bytes');
  return { produce, consume };
}

export async function runKafkaClientBench(o: { messages: number; repeat: number; log?: (s: string) => void }): Promise<KafkaClientResult> {
  const log = o.log ?? (() => undefined);
  const msgs: Msg[] = Array.from({ length: o.messages }, (_, i) => {
    const key = Buffer.from(`key-${String(i).padStart(6, '0')}`);
    return { key, value: randomBytes(100), partition: kafkaPartition(key, PARTITIONS) };
  });
  const prefix = `bench${uid()}`;
  const runs = { kafkajs: [] as Awaited<ReturnType<typeof kafkajsRound>>[], platformatic: [] as Awaited<ReturnType<typeof platformaticRound>>[] };
  try {
    for (let r = 0; r < o.repeat; r++) {
      const order = r % 2 === 0 ? (['kafkajs', 'platformatic'] as const) : (['platformatic', 'kafkajs'] as const);
      for (const who of order) {
        const topic = `${prefix}.${who}.${r}`;
        await withAdmin((a) => createTopic(a, topic, PARTITIONS));
        const x = who === 'kafkajs' ? await kafkajsRound(topic, msgs) : await platformaticRound(topic, msgs);
        runs[who].push(x);
        log(`  r${r + 1}/${o.repeat} ${who === 'kafkajs' ? 'kafkajs (patched)' : '@platformatic/kafka'}: produce ${fmt(x.produce.perSec)} msgs/s (${fmt(x.produce.cpuUs, 1)} µs CPU each), consume ${fmt(x.consume.perSec)} msgs/s (${fmt(x.consume.cpuUs, 1)} µs)`);
      }
    }
  } finally {
    await deleteTopics(prefix);
  }
  const figs = (xs: Awaited<ReturnType<typeof kafkajsRound>>[]): ClientFigures => ({
    produce: figure(xs.map((x) => x.produce.perSec)), consume: figure(xs.map((x) => x.consume.perSec)),
    produceCpu: figure(xs.map((x) => x.produce.cpuUs)), consumeCpu: figure(xs.map((x) => x.consume.cpuUs)),
  });
  const kj = figs(runs.kafkajs);
  const pl = figs(runs.platformatic);
  return { messages: o.messages, repeat: o.repeat, patched: kafkajsPatched, kafkajs: kj, platformatic: pl, produceRatio: ratio(pl.produce, kj.produce), consumeRatio: ratio(pl.consume, kj.consume) };
}

export function kafkaClientTable(r: KafkaClientResult): string {
  const verdict = (f: Figure) => (f.median >= ADOPT_AT ? `≥ ${ADOPT_AT}×: faster enough` : `< ${ADOPT_AT}×: not enough`);
  return [
    `| ${fmt(r.messages)} messages | kafkajs${r.patched ? ' (patched, as syncline runs it)' : ' (NOT patched)'} msgs/s | µs CPU each | @platformatic/kafka msgs/s | µs CPU each | @platformatic ÷ kafkajs | |`,
    '|---|---|---|---|---|---|---|',
    `| produce | ${fmtFigure(r.kafkajs.produce)} | ${fmt(r.kafkajs.produceCpu.median, 1)} | ${fmtFigure(r.platformatic.produce)} | ${fmt(r.platformatic.produceCpu.median, 1)} | ${fmtFigure(r.produceRatio, 2)} | ${verdict(r.produceRatio)} |`,
    `| consume | ${fmtFigure(r.kafkajs.consume)} | ${fmt(r.kafkajs.consumeCpu.median, 1)} | ${fmtFigure(r.platformatic.consume)} | ${fmt(r.platformatic.consumeCpu.median, 1)} | ${fmtFigure(r.consumeRatio, 2)} | ${verdict(r.consumeRatio)} |`,
  ].join('\n');
}

export function kafkaClientSection(r: KafkaClientResult, m: { nproc: number; cpu: string; node: string; date: string }, command: string): string {
  return [
    '## Kafka client: @platformatic/kafka against kafkajs',
    '',
    'bench/kafka-client.ts: one process, the same messages (10-byte key, 100-byte value) to a fresh topic of 3 partitions, partitions',
    'set by the caller as capture does, batches of 1,000, idempotent, acks=all, each awaited; then all of them consumed from the',
    `beginning in a fresh group, every message looked at. Median (min – max) of ${r.repeat} alternating round${r.repeat === 1 ? '' : 's'}.`,
    `@platformatic/kafka 1.35.0 (its newest for Node 20) against kafkajs 2.2.4 with syncline's produce patches (src/core/kafkajs-patch.ts).`,
    `Rule (issue 26): the default only if ≥ ${ADOPT_AT}× on its stage, and after the whole suite and the chaos run pass on it.`,
    '',
    kafkaClientTable(r),
    '',
    ...e2eSectionFooter(m, command, 'the ratios'),
  ].join('\n');
}

runBenchCli(import.meta.url, async (arg) => runKafkaClientBench({ messages: Number(arg('messages', '200000')), repeat: Number(arg('repeat', '3')), log: console.log }), kafkaClientTable);
