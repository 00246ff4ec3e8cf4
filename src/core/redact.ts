/**
 * The one choke point for text that people see (log lines, dead-letter error headers, /health
 * failures, reports, alert texts): `redact(text, table?, row?)` applies the process's masking
 * policy (src/security/masking/text.ts, installed from the loaded config by installMasking) to it.
 * Until a policy is installed (a process that loaded no config) text passes unchanged.
 *
 * `table` (target or source name) narrows which columns are sensitive; `row` (the values of the
 * record the text is about, when known) lets values quoted in free text (an HTTP target's response
 * body, "invalid input syntax: …") be found and masked too.
 */
import type { Row } from './envelope.js';

export type Redactor = (text: string, table?: string, row?: Row | null) => string;

let active: Redactor | undefined;

/** Install (or, with undefined, remove) the process's redactor. */
export function setRedactor(r: Redactor | undefined): void {
  active = r;
}

/** Whether a policy is installed (callers skip work when not). */
export function redacting(): boolean {
  return active !== undefined;
}

export function redact(text: string, table?: string, row?: Row | null): string {
  return active ? active(text, table, row) : text;
}
