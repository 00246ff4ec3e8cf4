/** The polling sources' config: defaults, and mistakes refused with the option's path and line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../index.js';
import { ConfigError, parseConfig } from '../../../src/core/config/load.js';

const config = (source: string) => `version: 1
pipelines:
  polled:
    source:
${source}
    target: { type: postgres, connection: { database: dst } }
    conflict: { strategy: source-wins }
    tables:
      - source: public.orders
`;

function problems(text: string) {
  try {
    parseConfig(text, 'poll.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
  }
  assert.fail('config was accepted');
}

test('postgres-poll and mariadb-poll load with their defaults', () => {
  const c = parseConfig(config(`      type: postgres-poll
      connection: { database: shop }
      tables:
        public.orders: { mode: timestamp, column: updated_at }`), 'poll.yaml', {});
  const s = c.pipelines.polled!.source as { intervalMs: number; stateDir: string; tables: Record<string, { mode: string; overlapMs: number; chunkSize: number }> };
  assert.equal(s.intervalMs, 5000);
  assert.equal(s.stateDir, '.syncline/poll');
  assert.deepEqual(s.tables['public.orders'], { mode: 'timestamp', column: 'updated_at', overlapMs: 5000, overlap: 0, chunkSize: 5000 });
  const m = parseConfig(config(`      type: mariadb-poll
      connection: { database: shop }`), 'poll.yaml', {});
  assert.equal((m.pipelines.polled!.source as { type: string }).type, 'mariadb-poll');
});

test('a timestamp table without its column, an unknown mode and a negative overlap are refused at their lines', () => {
  const p = problems(config(`      type: postgres-poll
      connection: { database: shop }
      tables:
        public.orders: { mode: timestamp }
        public.other: { mode: sometimes }
        public.third: { mode: timestamp, column: at, overlapMs: -1 }`));
  assert.ok(p.some((x) => /^8:pipelines\.polled\.source\.tables\.public\.orders\.column: mode timestamp needs a tracking column/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /^9:pipelines\.polled\.source\.tables\.public\.other\.mode/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /^10:pipelines\.polled\.source\.tables\.public\.third\.overlapMs/.test(x)), p.join('\n'));
});
