/**
 * kafkajs 2.2.4 (its last release, 2023) groups the messages of a produce call per partition with
 * `Object.assign(result, { [partition]: [...current, message] })` for every message: it copies the
 * partition's list once per message, quadratic in the messages per partition (≈ 5 % of capture's CPU
 * with 2,000-change batches, in the profile of `npm run bench`). This module puts a linear version
 * with the same result (an object of partition → messages in their order) into Node's require cache
 * under that file's name before kafkajs loads it, so kafkajs's producer takes it. It must be
 * evaluated before anything loads kafkajs: src/core/kafka.ts and the CLI import it first.
 * `kafkajsPatched` says whether it was in time.
 */
import Module, { createRequire } from 'node:module';

type Grouper = (o: { topic: string; partitionMetadata: unknown[]; messages: unknown[]; partitioner: (o: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number }) => Record<number, unknown[]>;

/** The same grouping as kafkajs's groupMessagesPerPartition, in one pass. */
export const groupMessagesPerPartition: Grouper = ({ topic, partitionMetadata, messages, partitioner }) => {
  const result: Record<number, unknown[]> = {};
  if (partitionMetadata.length === 0) return result;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const list = result[partition];
    if (list) list.push(message);
    else result[partition] = [message];
  }
  return result;
};

const require = createRequire(import.meta.url);
export const GROUPER_PATH = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
const SEND_MESSAGES_PATH = require.resolve('kafkajs/src/producer/sendMessages.js');

function install(): boolean {
  if (require.cache[SEND_MESSAGES_PATH]) return require.cache[GROUPER_PATH]?.exports === groupMessagesPerPartition;
  const m = new Module(GROUPER_PATH);
  m.filename = GROUPER_PATH;
  m.loaded = true;
  m.exports = groupMessagesPerPartition;
  require.cache[GROUPER_PATH] = m;
  return true;
}

export const kafkajsPatched = install();
