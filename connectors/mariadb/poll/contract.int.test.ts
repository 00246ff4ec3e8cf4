/**
 * The poll contract (test/contract/poll-contract.ts: the source contract's type round trips and
 * deletes, the parts a polling source promises) for mariadb-poll in hash mode, into the PostgreSQL
 * sink (autoCreate), with every MariaDB type the binlog source declares. Run in a non-UTC time zone.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresSink } from '../../../test/contract/postgres-fixtures.js';
import { pollContract } from '../../../test/contract/poll-contract.js';
import { MARIA, mariadbSource } from '../source/contract-fixtures.js';

process.env.TZ = 'Pacific/Pago_Pago';
const stateDir = mkdtempSync(join(tmpdir(), 'syncline-poll-contract-'));

pollContract({ ...mariadbSource, name: 'mariadb-poll' }, postgresSink, (db) => ({ type: 'mariadb-poll', connection: { ...MARIA, database: db.database }, intervalMs: 200, stateDir, lingerMs: 5 }));
