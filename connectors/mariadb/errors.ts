/**
 * MariaDB errors → the one error taxonomy (src/core/errors.ts), by server error number (errno) or
 * the client's network code. Codes are `MARIADB_<errno>` (`MARIADB_1406`), or `NET_<code>` for the
 * network. A value error names its column when the server's message does (SynclineError.column).
 *
 *   retriable  deadlock 1213, lock wait timeout 1205, too many connections 1040, server shutting
 *              down 1053, connection killed 1927, query interrupted 1317, gone away 2006, lost 2013,
 *              cannot connect 2002/2003, ECONNREFUSED, PROTOCOL_CONNECTION_LOST, …; anything unknown
 *              (retried a few times by the policy, then dead-lettered)
 *   poison     the row can never be written as it is: 1406 too long, 1264 out of range, 1048 NULL in
 *              NOT NULL, 1062 duplicate (a unique non-key index), 1451/1452 foreign key, 4025 CHECK,
 *              1366/1292/1265/1367 incorrect value, 1690 out of range in an expression, 4038 bad JSON
 *   fatal      nothing changes until an operator acts: 1044/1045/1698 access denied, 1142/1143 no
 *              privilege on a table/column, 1227 no privilege for an operation, 1049 unknown database,
 *              1146 no such table (without autoCreate), 1054 unknown column (without autoEvolve),
 *              1071 key too long (CREATE TABLE); TLS the server cannot meet (no TLS, a certificate
 *              Node refuses)
 */
import { fatal, networkCode, poison, retriable, SynclineError } from '../../src/core/errors.js';

const RETRIABLE = new Set([1205, 1213, 1040, 1053, 1927, 1317, 1614, 2002, 2003, 2006, 2013, 2055, 1158, 1159, 1160, 1161]);
const POISON = new Set([1406, 1264, 1048, 1062, 1451, 1452, 4025, 1366, 1292, 1265, 1367, 1690, 4038, 1411, 1416, 3140, 1586, 1557, 1216, 1217]);
const FATAL = new Set([1044, 1045, 1698, 1142, 1143, 1227, 1049, 1146, 1054, 1071, 1118, 1050]);
/** mysql2's own codes for a connection that broke or never came. */
const CLIENT_RETRIABLE = new Set(['PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'ETIMEDOUT']);

/** mysql2's codes for TLS settings the server cannot meet. */
const CLIENT_FATAL = new Set(['HANDSHAKE_NO_SSL_SUPPORT']);
const TLS_HINT = '(TLS: set ssl: false when the server has no TLS, sslCaFile to the CA that signed its certificate, check host matches its name, or sslVerify: false to encrypt without verifying)';

interface MariaErrorFields {
  errno?: number;
  code?: string;
  sqlMessage?: string;
  message?: string;
  fatal?: boolean;
}

/** Classify an error from mysql2 talking to MariaDB; `context` says where (sink, table, key). */
export function classifyMariaError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const e = (err ?? {}) as MariaErrorFields;
  const text = e.sqlMessage ?? e.message ?? String(err);
  const msg = `${context}: ${text}`;
  const errno = typeof e.errno === 'number' && e.errno >= 1000 ? e.errno : undefined;
  if (errno !== undefined) {
    const code = `MARIADB_${errno}`;
    let out: SynclineError;
    if (POISON.has(errno)) out = poison(code, msg, err);
    else if (FATAL.has(errno)) out = fatal(code, msg, err);
    else out = retriable(code, msg, err); // RETRIABLE, and unknown errors: retried, then dead-lettered
    const column = errorColumn(text);
    if (column !== undefined && out.kind === 'poison') out.column = column;
    return out;
  }
  const net = networkCode(err);
  if (net) return retriable(`NET_${net}`, msg, err);
  if (typeof e.code === 'string' && CLIENT_RETRIABLE.has(e.code)) return retriable(`MARIADB_${e.code}`, msg, err);
  if (typeof e.code === 'string' && CLIENT_FATAL.has(e.code)) return fatal(`MARIADB_${e.code}`, `${msg} ${TLS_HINT}`, err);
  // A certificate Node refuses (unknown CA, wrong name, expired): the TLS settings must change.
  if (typeof e.code === 'string' && /^(ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/.test(e.code)) return fatal(`MARIADB_TLS_${e.code}`, `${msg} ${TLS_HINT}`, err);
  return retriable(typeof e.code === 'string' ? `MARIADB_${e.code}` : 'MARIADB_UNKNOWN', msg, err);
}

/** Whether a classified error is one bad record's (isolate it) rather than the batch's. */
export const isRecordError = (e: SynclineError): boolean => e.kind === 'poison';

/**
 * The column a value error's message names: "Data too long for column 's' at row 1", "Out of range
 * value for column 'n' at row 3", "Column 'x' cannot be null", "Incorrect integer value: 'a' for
 * column `db`.`t`.`n` at row 1". CHECK (4025) and duplicate-key (1062) errors name a constraint or
 * an index, not a column.
 */
export function errorColumn(message: string): string | undefined {
  let m = /for column (?:`[^`]*`\.)*[`']([^`']+)[`'] at row/.exec(message);
  if (m) return m[1];
  m = /^Column '([^']+)' cannot be null/.exec(message);
  return m ? m[1] : undefined;
}
