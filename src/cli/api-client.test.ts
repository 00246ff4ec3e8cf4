import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiClient, configUrl, describeApiFailure } from './api-client.js';

test('TLS options with an http:// URL, a certificate without its key and an unreadable file are refused, named', () => {
  assert.throws(() => apiClient('http://127.0.0.1:9464', { ca: '/x/ca.pem' }, {}), /--ca\/--cert\/--key .* are set but the running syncline's URL is http:\/\/127\.0\.0\.1:9464: use https:\/\//);
  assert.throws(() => apiClient('http://127.0.0.1:9464', {}, { SYNCLINE_API_CA: '/x/ca.pem' }), /use https:\/\//);
  assert.throws(() => apiClient('https://127.0.0.1:9464', { cert: '/x/c.pem' }, {}), /needs both --cert and --key .*got only the certificate/);
  assert.throws(() => apiClient('https://127.0.0.1:9464', { ca: '/nonexistent/ca.pem' }, {}), /cannot read --ca \(SYNCLINE_API_CA\) \/nonexistent\/ca\.pem/);
  assert.doesNotThrow(() => apiClient('http://127.0.0.1:9464', {}, {}));
});

test('the default URL is https when the config serves TLS', () => {
  assert.equal(configUrl(undefined), 'http://127.0.0.1:9464');
  const o = { enabled: true, host: '0.0.0.0', port: 9500, checkTimeoutMs: 3000, tls: { certFile: 'c', keyFile: 'k' } };
  assert.equal(configUrl({ observability: o } as never), 'https://127.0.0.1:9500');
});

test('failures name the peer and the cause', () => {
  const wrap = (code: string, message: string) => new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) });
  assert.match(describeApiFailure('https://h:1', wrap('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), {}), /^TLS: the certificate of the running syncline at https:\/\/h:1 does not verify \(DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate\): pass --ca FILE/);
  assert.match(describeApiFailure('https://h:1', wrap('ERR_TLS_CERT_ALTNAME_INVALID', 'IP: 10.0.0.1 is not in the cert\'s list'), { ca: 'ca.pem' }), /not signed by the CA in ca\.pem, or does not name the host/);
  assert.match(describeApiFailure('https://h:1', wrap('ECONNRESET', 'socket hang up'), {}), /refused the connection in the handshake .*requires a client certificate/);
  assert.match(describeApiFailure('https://h:1', wrap('ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number'), {}), /does not answer TLS .*use an http:\/\/ URL/);
  assert.match(describeApiFailure('http://h:1', wrap('ECONNREFUSED', 'connect ECONNREFUSED'), {}), /^cannot reach the running syncline at http:\/\/h:1 \(ECONNREFUSED/);
});
