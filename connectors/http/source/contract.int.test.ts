/**
 * The poll contract (test/contract/poll-contract.ts: every declared type round-trips through a
 * snapshot pass and later inserts and updates, NULLs; deletes of every shape converge row for row)
 * for the HTTP source, into the PostgreSQL sink: each table is listed by a real local HTTP API that
 * serves it from PostgreSQL, exported after every write, 25 records a page with a keyset cursor
 * (test/contract/http-fixtures.ts); hash tracking, so deletes are found. The PostgreSQL fixture's type
 * cases an HTTP API cannot carry are reported below as skipped, each with its reason.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { postgresSink } from '../../../test/contract/postgres-fixtures.js';
import { HTTP_EXCLUDED, httpEndpoint, httpSourceFixture } from '../../../test/contract/http-fixtures.js';
import { pollContract } from '../../../test/contract/poll-contract.js';

const stateDir = mkdtempSync(join(tmpdir(), 'syncline-http-contract-state-'));
const fixture = httpSourceFixture();
const S = fixture.basicTypes;

pollContract(fixture, postgresSink, () => ({
  type: 'http', stateDir, intervalMs: 200, lingerMs: 5,
  retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 },
  endpoints: {
    'public.cp_churn': httpEndpoint(fixture.api.url, 'cp_churn', [['id', S.id], ['v', S.int], ['note', S.text]], ['id'], 25),
    'public.cp_types': httpEndpoint(fixture.api.url, 'cp_types', [['id', S.id], ...fixture.types.map((t): [string, string] => [t.column, t.sourceType])], ['id'], 2),
  },
}));

describe('poll contract: type cases an HTTP API cannot carry', () => {
  for (const x of HTTP_EXCLUDED) it(`${x.column}${x.sample ? ` sample ${x.sample}` : ''}`, { skip: x.why }, () => undefined);
});
