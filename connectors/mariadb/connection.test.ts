import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mariaTls } from './connection.js';
import type { SynclineError } from '../../src/core/errors.js';

const base = { host: 'db', port: 3306, ssl: true, sslVerify: true };

test('TLS options mean what the PostgreSQL connector options of the same names mean', () => {
  assert.equal(mariaTls({ ...base, ssl: false }), undefined);
  assert.deepEqual(mariaTls(base), { rejectUnauthorized: true });
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-tls-')), 'ca.pem');
  writeFileSync(file, 'PEM');
  assert.deepEqual(mariaTls({ ...base, sslCaFile: file }), { rejectUnauthorized: true, ca: 'PEM' });
  const warnings: string[] = [];
  assert.deepEqual(mariaTls({ ...base, port: 3307, sslVerify: false }, (m) => warnings.push(m)), { rejectUnauthorized: false });
  mariaTls({ ...base, port: 3307, sslVerify: false }, (m) => warnings.push(m));
  assert.equal(warnings.length, 1, 'warned once per server');
  assert.throws(() => mariaTls({ ...base, sslCaFile: '/nonexistent/ca.pem' }), (e: SynclineError) => e.kind === 'fatal' && e.code === 'CONFIG_TLS');
});
