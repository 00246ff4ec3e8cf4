/**
 * `syncline config validate FILE`: load and check a config file without connecting to anything.
 * Prints `OK: FILE (N pipelines: a, b)` or every problem as `FILE:LINE:COL: path: reason`. Also
 * compiles the validation rules with their custom functions (importing each pipeline's
 * validation.module, which runs that module's top-level code).
 * Returns the process exit code (0 valid, 1 invalid); the caller sets it.
 */
import '../../connectors/index.js';
import { ConfigError, loadConfig } from '../core/config/load.js';
import { validateRules } from '../process/validation/index.js';

export async function configValidate(file: string): Promise<number> {
  try {
    const config = loadConfig(file);
    await validateRules(config, file); // validation rules' custom functions: loads each pipeline's module
    const names = Object.keys(config.pipelines);
    const disabled = names.filter((n) => config.pipelines[n]?.enabled === false);
    const list = names.map((n) => (disabled.includes(n) ? `${n} (disabled)` : n)).join(', ');
    console.log(`OK: ${file} (${names.length} pipeline${names.length === 1 ? '' : 's'}${names.length > 0 ? `: ${list}` : ''})`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}
