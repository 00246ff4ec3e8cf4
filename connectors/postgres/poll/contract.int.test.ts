/**
 * The poll contract (test/contract/poll-contract.ts: the source contract's type round trips and
 * deletes, the parts a polling source promises) for postgres-poll in hash mode, into the PostgreSQL
 * sink, with the PostgreSQL source fixture's declared types. Run in a non-UTC time zone.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresSink, postgresSource } from '../../../test/contract/postgres-fixtures.js';
import { pollContract } from '../../../test/contract/poll-contract.js';
import { PG } from '../../../test/helpers.js';

process.env.TZ = 'Pacific/Pago_Pago';
const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-contract-'));

pollContract({ ...postgresSource, name: 'postgres-poll' }, postgresSink, (db) => ({ type: 'postgres-poll', connection: { ...PG, database: db.database }, intervalMs: 200, stateDir, lingerMs: 5 }));
