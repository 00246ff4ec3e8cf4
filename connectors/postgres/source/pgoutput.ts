/**
 * pgoutput decoding that keeps every column value in PostgreSQL's text form, so the one exact
 * parser in ../pgtypes.ts turns it into canonical values (the library's default parsers would
 * turn timestamps into JS Dates and lose microseconds).
 */
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

const identity = (raw: unknown) => raw;

export class TextPgoutputPlugin extends PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    const msg = super.parse(buffer) as Pgoutput.Message;
    // Relation messages are cached by the parser and reused for the tuples that follow; replacing
    // the per-column parser here (synchronously, in stream order) makes every later tuple text.
    if (msg.tag === 'relation') for (const col of msg.columns) col.parser = identity;
    return msg;
  }
}

export type { Pgoutput };
