/**
 * `syncline pipeline pause|resume NAME`: asks the running syncline (its HTTP API, like `sync run`)
 * to pause or resume a realtime pipeline's processing: POST /api/pipelines/:name/pause|resume
 * (src/sync/pause.ts; role operator; audited). Exit codes: 0 done (or already so), 1 error,
 * 3 unknown pipeline, 4 nothing to pause (a scheduled/manual pipeline, or no consumer stage there).
 */
import '../../connectors/index.js'; // the config spec knows the connectors' sources and targets
import type { OptionValues } from 'commander';
import { loadConfig } from '../core/config/load.js';
import type { PauseState } from '../sync/pause.js';
import { call, CliError, serviceUrl } from './sync.js';

/** `syncline pipeline pause|resume`'s action (its options: ./commands/pipeline.ts, loaded without this module). */
export async function setPaused(action: 'pause' | 'resume', name: string, o: OptionValues): Promise<void> {
  try {
    const config = loadConfig(o.config);
    if (!config.pipelines[name]) throw new CliError(3, `no pipeline '${name}' in the config (have: ${Object.keys(config.pipelines).join(', ')})`);
    const { status, body } = await call(serviceUrl(config, o.url), `/api/pipelines/${encodeURIComponent(name)}/${action}`, o, { method: 'POST' });
    if (status !== 200) throw new CliError(status === 404 ? 3 : status === 409 ? 4 : 1, (body as { error?: string }).error ?? `HTTP ${status}`);
    const s = body as PauseState;
    if (o.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    else process.stdout.write(`${name}: ${s.paused ? `paused by ${s.by} at ${s.at}` : 'processing'}${s.unchanged ? ` (it already was ${s.paused ? 'paused' : 'running'})` : ''}\n`);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    process.stderr.write(`syncline pipeline ${action}: ${err.message}\n`);
    process.exitCode = err.exit;
  }
}
