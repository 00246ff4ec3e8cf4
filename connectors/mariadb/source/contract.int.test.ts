/**
 * The source contract (test/contract/source-contract.ts) for the MariaDB source, into the PostgreSQL
 * sink (autoCreate): snapshot/stream handoff under concurrent writers, every declared MariaDB type
 * round trip (./contract-fixtures.ts), deletes, per-key order, kill -9 of the capture child. Run in a
 * non-UTC time zone (node's TZ) to catch time bugs in either direction.
 */
import { postgresSink } from '../../../test/contract/postgres-fixtures.js';
import { sourceContract } from '../../../test/contract/source-contract.js';
import { mariadbSource } from './contract-fixtures.js';

process.env.TZ = 'Pacific/Pago_Pago';

sourceContract(mariadbSource, postgresSink);
