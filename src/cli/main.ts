#!/usr/bin/env -S node --heap-growing-percent=50 --max-semi-space-size=8
/**
 * `syncline` command line. Exit codes: 0 clean stop, 1 fatal error (with the reason on stderr),
 * 2 usage error.
 */
import '../core/kafkajs-patch.js'; // first: before anything loads kafkajs
import { applyNodeFlags } from './node-flags.js';
import { errorCode, errorMessage } from '../core/errors.js';
import { ONE_SHOT, program } from './program.js';

applyNodeFlags(); // the bin's node flags, also when started as `node dist/src/cli/main.js`

program
  .parseAsync(process.argv)
  .then(() => {
    // One-shot commands: client libraries may keep timers alive after close; do not hang on them.
    if (ONE_SHOT.has(process.argv[2] ?? '')) process.stdout.write('', () => process.exit(process.exitCode ?? 0));
  })
  .catch((err: unknown) => {
    process.stderr.write(`syncline: ${errorCode(err)}: ${errorMessage(err)}\n`);
    process.exit(1);
  });
