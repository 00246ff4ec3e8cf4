/**
 * The test file that runs the connector contract for Acme. In a real connector it is
 * test/contract/acme.int.test.ts (picked up by `npm test`); here it is only type-checked. The
 * connector must be registered through connectors/index.ts: the suites start `syncline capture` as
 * a child process and build the pipeline from the registered specs.
 */
import { sinkContract } from '../../../test/contract/sink-contract.js';
import { sourceContract } from '../../../test/contract/source-contract.js';
import { acmeSink, acmeSource } from './contract-fixtures.js';

process.env.TZ = 'Pacific/Pago_Pago'; // a non-UTC zone catches time bugs either way

sourceContract(acmeSource); // into the PostgreSQL sink (autoCreate)
sinkContract(acmeSink); // fed by the PostgreSQL source
