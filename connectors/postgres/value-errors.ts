/**
 * Which column of a written row a PostgreSQL error is about, when the error lets it be told (a dead
 * letter for a bad value names table, key and column). Pure: the sink passes the error, the failing
 * statement's parameter → column map and the row's written columns with their types.
 *
 *  - the error's own `column` field (a NOT NULL violation, …);
 *  - a parameter that did not convert to its column's type: PostgreSQL says which in `where`
 *    ("unnamed portal parameter $3 = '...'"): 22P02 invalid input syntax, 22003 value out of range
 *    for type smallint, …;
 *  - an assignment refused by the column type's modifier, which the message names: 22001 "value too
 *    long for type character varying(10)", 22003 "numeric field overflow" with "A field with precision
 *    3, scale 2 …", 22026 "bit string length 3 does not match type bit(4)": the one written column of
 *    that type (none or several: not told).
 * Anything else (a CHECK constraint names its constraint, not a column) is not attributed.
 */

export interface PgErrorFields {
  code?: string;
  message?: string;
  detail?: string;
  where?: string;
  column?: string;
}

export function valueErrorColumn(
  err: PgErrorFields | null | undefined,
  paramColumn: (n: number) => string | undefined,
  written: { name: string; type: string | undefined }[],
): string | undefined {
  if (!err || typeof err !== 'object') return undefined;
  if (typeof err.column === 'string' && err.column !== '') return err.column;
  const param = /\bparameter \$(\d+)\b/.exec(err.where ?? '');
  if (param) {
    const col = paramColumn(Number(param[1]));
    if (col !== undefined) return col;
  }
  const type = typeNamed(err);
  if (type === undefined) return undefined;
  const of = written.filter((c) => c.type === type);
  return of.length === 1 ? of[0]!.name : undefined;
}

/** The column type (format_type's spelling) an assignment error names, if any. */
function typeNamed(err: PgErrorFields): string | undefined {
  const msg = err.message ?? '';
  if (err.code === '22001' || err.code === '22026') {
    const m = /\btype (.+)$/.exec(msg);
    return m ? m[1]!.trim() : undefined;
  }
  if (err.code === '22003') {
    const m = /\bA field with precision (\d+), scale (-?\d+)\b/.exec(err.detail ?? '');
    return m ? `numeric(${m[1]},${m[2]})` : undefined;
  }
  return undefined;
}
