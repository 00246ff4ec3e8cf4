/**
 * The sink contract (test/contract/sink-contract.ts) for the MariaDB sink (./contract-fixtures.ts):
 * fed by the PostgreSQL source (PostgreSQL types into MariaDB), and fed by the MariaDB source
 * (MariaDB types into MariaDB: the hand-made target columns have the source's own types, the
 * autoCreate'd table the types the sink derives from the source's pgTypes). Run in a non-UTC time
 * zone (node's TZ) to catch time bugs.
 */
import { sinkContract } from '../../test/contract/sink-contract.js';
import { mariadbSink, mariadbSinkFedByMariadb } from './contract-fixtures.js';
import { mariadbSource } from './source/contract-fixtures.js';

process.env.TZ = 'Pacific/Pago_Pago';

sinkContract(mariadbSink);
sinkContract(mariadbSinkFedByMariadb, mariadbSource);
