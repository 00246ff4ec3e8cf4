/** Who runs a CLI command: user@host (recorded with DLQ actions, sync runs, schema decisions and in the audit trail). */
import { hostname, userInfo } from 'node:os';

export function cliUser(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return 'cli';
  }
}
