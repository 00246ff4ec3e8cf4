/**
 * Every `npx syncline …` command README.md shows works as written right after `npm ci`, on a fresh
 * clone of this repository's HEAD (no dist/, nothing built): each documented form's help (read in
 * one process from the command definitions the bin runs, src/cli/program.ts) is that command's own
 * usage, and every option the README gives it is one the command has; the bin itself answers
 * through `npx syncline` (the top-level help, a subcommand's help, a config validated). The forms
 * are read from README.md, so a newly documented command is swept without touching this test. Then
 * the same clone, built and without its dev dependencies (what the image holds), answers through
 * dist/. Needs the npm registry (npm ci).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

export interface DocumentedForm {
  /** Subcommand words: ['dlq', 'list']; [] for `npx syncline` alone. */
  path: string[];
  /** Options the README gives the form: ['--pipeline', '--json']. */
  options: string[];
  /** Where it was read. */
  line: string;
}

const WORD = /^[a-z][a-z-]*$/;

/**
 * The `npx syncline …` forms of a Markdown text, from its code (fenced blocks and `inline` spans):
 * the lower-case words after `npx syncline` up to the first argument, option or placeholder, and the
 * options of the rest of the line (up to a ` # ` comment). `a ID | b ID` documents two commands.
 */
export function documentedForms(markdown: string): DocumentedForm[] {
  const code: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    else if (fenced) code.push(line);
    else for (const m of line.matchAll(/`([^`]+)`/g)) code.push(m[1]!);
  }
  const forms: DocumentedForm[] = [];
  for (const text of code) {
    for (const m of text.matchAll(/npx syncline\b(.*)/g)) {
      const rest = m[1]!.split(/\s#\s/)[0]!;
      const tokens = rest.trim().split(/\s+/).filter(Boolean);
      const path: string[] = [];
      for (const t of tokens) {
        if (!WORD.test(t)) break;
        path.push(t);
      }
      const options = [...new Set([...rest.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((o) => o[0]))];
      forms.push({ path, options, line: `npx syncline${rest}`.trim() });
      // `requeue ID | discard ID [--by WHO]`: an alternative subcommand outside brackets.
      let depth = 0;
      for (let i = 0; i < rest.length; i++) {
        const ch = rest[i];
        if (ch === '[') depth++;
        else if (ch === ']') depth--;
        else if (ch === '|' && depth === 0 && path.length > 0) {
          const alt = /^\|\s+([a-z][a-z-]*)(?![\w.])/.exec(rest.slice(i));
          if (alt) forms.push({ path: [...path.slice(0, -1), alt[1]!], options, line: `npx syncline${rest}`.trim() });
        }
      }
    }
  }
  return forms;
}

test('documentedForms reads the forms, their options and the alternatives', () => {
  const md = [
    'Run `npx syncline` first, then:',
    '```bash',
    'npx syncline start   [--config FILE] [--pipeline NAME]...   # all stages (--metrics-port is not read here)',
    'npx syncline config validate [FILE]',
    'npx syncline dlq requeue ID | discard ID [--by WHO]',
    'npx syncline dlq resolve ID --choice source|target [--merged JSON | --merged-file F]',
    '$ npx syncline config validate bad.yaml',
    'npm run stack:up | stack:down',
    '```',
  ].join('\n');
  assert.deepEqual(
    documentedForms(md).map((f) => [f.path.join(' '), f.options.join(' ')]),
    [
      ['', ''],
      ['start', '--config --pipeline'],
      ['config validate', ''],
      ['dlq requeue', '--by'],
      ['dlq discard', '--by'],
      ['dlq resolve', '--choice --merged --merged-file'],
      ['config validate', ''],
    ],
  );
});

const run = (cwd: string, cmd: string, args: string[], timeout = 120_000) => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, NODE_ENV: '', SYNCLINE_LOG_LEVEL: 'warn' } });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
};

/** Asserts that `help` (of `syncline <path>`) is that command's help and lists the options. */
function checkHelpText(help: string, path: string[], options: string[], where: string): void {
  const r = { out: help };
  const usage = /^Usage: syncline(.*)$/m.exec(r.out);
  assert.ok(usage, `${where}: no usage line in:\n${r.out}`);
  const words: string[] = [];
  for (const w of usage[1]!.trim().split(/\s+/)) {
    if (!WORD.test(w)) break;
    words.push(w);
  }
  assert.deepEqual(words, path, `${where}: the help answered is that of 'syncline ${words.join(' ')}', not of the documented 'syncline ${path.join(' ')}'`);
  for (const o of options) assert.match(r.out, new RegExp(`(?<![\\w-])${o}(?![\\w-])`), `${where}: 'syncline ${path.join(' ')}' has no option ${o}:\n${r.out}`);
}

/** Asserts that `npx syncline <path> --help` (through the bin) is that command's help and lists the options. */
function checkHelp(dir: string, path: string[], options: string[], where: string): void {
  const r = run(dir, 'npx', ['syncline', ...path, '--help']);
  assert.equal(r.code, 0, `${where}: npx syncline ${path.join(' ')} --help exited ${r.code}:\n${r.out}${r.error ? `\n${r.error.message}` : ''}`);
  checkHelpText(r.out, path, options, where);
}

/**
 * The help of each command path, read in one process of the clone from the definitions the bin runs
 * (src/cli/program.ts; spawning the bin once per form cost ~2 s each, minutes on a loaded machine).
 * A path with no such command answers the help of its deepest existing ancestor, as commander does.
 */
function helpTexts(dir: string, paths: string[][]): Map<string, string> {
  const script = `const { program } = await import('./src/cli/program.ts');
    const out = {};
    for (const p of JSON.parse(process.env.SYNCLINE_HELP_PATHS)) {
      let c = program;
      for (const w of p) { const n = c.commands.find((x) => x.name() === w || x.aliases().includes(w)); if (!n) break; c = n; }
      out[p.join(' ')] = c.helpInformation();
    }
    process.stdout.write(JSON.stringify(out));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE_ENV: '', SYNCLINE_LOG_LEVEL: 'warn', SYNCLINE_HELP_PATHS: JSON.stringify(paths) } });
  assert.equal(r.status, 0, `reading the commands' help: ${r.stderr}${r.error ? `\n${r.error.message}` : ''}`);
  return new Map(Object.entries(JSON.parse(r.stdout) as Record<string, string>));
}

test('every documented `npx syncline …` form answers --help right after npm ci on a fresh clone, and dist/ serves the image', { timeout: 1_200_000 }, (t) => {
  const forms = documentedForms(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const byPath = new Map<string, { path: string[]; options: Set<string>; lines: string[] }>();
  for (const f of forms) {
    const k = f.path.join(' ');
    const e = byPath.get(k) ?? { path: f.path, options: new Set<string>(), lines: [] };
    for (const o of f.options) e.options.add(o);
    e.lines.push(f.line);
    byPath.set(k, e);
  }
  // The README documents the commands (a parse that finds a handful would sweep nothing).
  for (const k of ['start', 'init', 'doctor', 'config validate', 'dlq list', 'dlq discard', 'replay']) assert.ok(byPath.has(k), `README documents 'npx syncline ${k}'`);

  const dir = mkdtempSync(join(tmpdir(), 'syncline-clone-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const head = execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  execFileSync('git', ['clone', '--quiet', '--no-checkout', ROOT, dir]);
  execFileSync('git', ['-C', dir, 'checkout', '--quiet', head]);
  assert.ok(!existsSync(join(dir, 'dist')), 'a fresh clone has no build');
  const ci = run(dir, 'npm', ['ci', '--no-audit', '--no-fund'], 900_000);
  assert.equal(ci.code, 0, `npm ci failed:\n${ci.out.slice(-4000)}`);

  // The bin answers: the top-level help and a subcommand's.
  checkHelp(dir, [], [], 'npx syncline --help');
  checkHelp(dir, ['dlq', 'list'], ['--pipeline', '--json'], 'npx syncline dlq list --help');
  const helps = helpTexts(dir, [...byPath.values()].map((e) => e.path));
  for (const { path, options, lines } of byPath.values()) checkHelpText(helps.get(path.join(' ')) ?? '', path, [...options], lines[0]!);
  // One form run for real (it needs no service): the example config validates through the bin.
  const validate = run(dir, 'npx', ['syncline', 'config', 'validate', 'configs/data-sync-config.yaml']);
  assert.equal(validate.code, 0, validate.out);
  assert.match(validate.out, /^OK: configs\/data-sync-config\.yaml/m);

  // The image's way: built, production dependencies only (no tsx): the same bin runs dist/.
  const build = run(dir, 'npm', ['run', 'build'], 600_000);
  assert.equal(build.code, 0, build.out.slice(-4000));
  const prune = run(dir, 'npm', ['prune', '--omit=dev', '--no-audit', '--no-fund'], 300_000);
  assert.equal(prune.code, 0, prune.out.slice(-4000));
  assert.ok(!existsSync(join(dir, 'node_modules', 'tsx')), 'tsx is a dev dependency');
  checkHelp(dir, ['dlq', 'list'], ['--pipeline', '--json'], 'after npm prune --omit=dev');
  const dist = run(dir, 'npx', ['syncline', 'config', 'validate', 'configs/data-sync-config.yaml']);
  assert.equal(dist.code, 0, dist.out);
});
