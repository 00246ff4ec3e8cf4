/**
 * The connector contract (./sink-contract.ts, ./source-contract.ts) for the PostgreSQL connector:
 * the source fixture with the PostgreSQL sink as its target, the sink fixture fed by the PostgreSQL
 * source. Run in a non-UTC time zone (node's TZ) to catch time bugs in either direction.
 */
import { postgresSink, postgresSource } from './postgres-fixtures.js';
import { sinkContract } from './sink-contract.js';
import { sourceContract } from './source-contract.js';

process.env.TZ = 'Pacific/Pago_Pago';

sourceContract(postgresSource);
sinkContract(postgresSink);
