import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROUTES } from '../security/access/routes.js';
import { CONSOLE_ROUTES } from './routes.js';

test('every console route takes the role and scope of its API twin (the highest of them), so the console allows nothing the API refuses', () => {
  for (const r of CONSOLE_ROUTES) {
    assert.ok(r.path.startsWith('/console'), r.path);
    const twins = r.twins.map((t) => ROUTES.find((x) => `${x.method} ${x.path}` === t)!);
    assert.ok(twins.every(Boolean), `${r.path}: twins exist`);
    const rank = { viewer: 1, operator: 2, admin: 3 } as const;
    assert.equal(rank[r.role], Math.max(...twins.map((t) => rank[t.role])), `${r.method} ${r.path}`);
    // Every POST of the console acts: at least an operator, like every acting API route.
    if (r.method === 'POST') assert.notEqual(r.role, 'viewer', `${r.method} ${r.path} acts: not for viewers`);
  }
  const role = (m: string, p: string) => CONSOLE_ROUTES.find((r) => r.method === m && r.path === p)!.role;
  assert.equal(role('POST', '/console/dlq/:id/resolve'), 'operator');
  assert.equal(role('POST', '/console/dlq/bulk'), 'operator');
  assert.equal(role('GET', '/console/dlq'), 'viewer');
});
