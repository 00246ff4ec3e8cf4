/**
 * The poll contract (test/contract/poll-contract.ts: every declared type round-trips through a
 * snapshot pass and later inserts and updates, NULLs; deletes of every shape converge row for row)
 * for the file source, into the PostgreSQL sink: each table is a JSON Lines file rewritten whole after
 * every write (test/contract/file-fixtures.ts), with the PostgreSQL source fixture's types.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresSink } from '../../../test/contract/postgres-fixtures.js';
import { fileSourceFixture, fileTable } from '../../../test/contract/file-fixtures.js';
import { pollContract } from '../../../test/contract/poll-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'syncline-file-contract-'));
const stateDir = mkdtempSync(join(tmpdir(), 'syncline-file-contract-state-'));
const fixture = fileSourceFixture(dir);
const S = fixture.basicTypes;

pollContract(fixture, postgresSink, () => ({
  type: 'file', dir, stateDir, intervalMs: 200, stableMs: 20, lingerMs: 5,
  tables: [
    fileTable('cp_churn', [['id', S.id], ['v', S.int], ['note', S.text]], ['id']),
    fileTable('cp_types', [['id', S.id], ...fixture.types.map((t): [string, string] => [t.column, t.sourceType])], ['id']),
  ],
}));
