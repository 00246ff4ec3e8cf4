import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_ROLES } from '../../core/config/schema.js';
import { ROLES } from './auth.js';

test('the roles `syncline auth token create --role` offers are the config schema\'s API roles', () => {
  assert.deepEqual([...ROLES], [...API_ROLES]);
});
