/**
 * How CLI commands talk to a running syncline (status, report, sync run|status): its base URL,
 * the API token (--token / SYNCLINE_TOKEN, ./auth.ts) and, for a syncline serving HTTPS
 * (observability.tls), the CA that signed its certificate (--ca / SYNCLINE_API_CA; default the
 * system CAs) and a client certificate for one that requires them (--cert and --key /
 * SYNCLINE_API_CERT and SYNCLINE_API_KEY). The server certificate is always verified, with its
 * name against the URL's host. A failure is said naming the peer (the URL) and the cause: a
 * certificate that does not verify, a client certificate required or refused, HTTP spoken to HTTPS.
 */
import https from 'node:https';
import type { SynclineConfig } from '../core/config/schema.js';
import { errorMessage, fatal } from '../core/errors.js';
import { agentFetch } from '../core/registry-http.js';
import { readPem } from '../core/tls.js';
import { authHeaders } from './auth.js';
export { withApiOptions } from './api-options.js';

export interface ApiClientOptions {
  token?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/** The base URL of the config's server: https when it serves TLS, 127.0.0.1 for a wildcard host; else http://127.0.0.1:9464. */
export function configUrl(config?: SynclineConfig): string {
  const o = config?.observability;
  const host = !o || o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host;
  return `${o?.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${o?.port ?? 9464}`;
}

export interface ApiClient {
  base: string;
  /** fetch(base + path) with the token and the TLS settings; a failure to connect is thrown as an Error naming the peer and the cause (its `cause` is the original). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

const VERIFY = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** The code and a one-line reason of a socket/TLS error or what it wraps (OpenSSL's multi-line text cut to its reason). */
function codeOf(err: unknown, depth = 0): { code?: string; message: string } {
  const e = err as { code?: unknown; cause?: unknown; message?: unknown; reason?: unknown } | undefined;
  if (!e || typeof e !== 'object' || depth > 5) return { message: String(err) };
  if (typeof e.code === 'string') return { code: e.code, message: typeof e.reason === 'string' ? e.reason : String(e.message ?? '').split('\n')[0]! };
  return e.cause ? codeOf(e.cause, depth + 1) : { message: String(e.message ?? '') };
}

/** A call to the running syncline that failed before an answer: the message names the peer and the cause; `code` is the socket's or TLS's. */
export class ApiUnreachable extends Error {
  constructor(message: string, readonly code: string, cause: unknown) {
    super(message, { cause });
  }
}

/** Why a call to the running syncline at `base` failed, for a person: the peer, the cause, what to pass. */
export function describeApiFailure(base: string, err: unknown, o: { ca?: string; cert?: string }): string {
  const { code, message } = codeOf(err);
  const peer = `the running syncline at ${base}`;
  if (code && VERIFY.has(code)) {
    return `TLS: the certificate of ${peer} does not verify (${code}: ${message}): ${o.ca ? `it is not signed by the CA in ${o.ca}, or does not name the host of the URL` : 'pass --ca FILE (or SYNCLINE_API_CA) with the CA that signed it'}`;
  }
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' || (/^https:/.test(base) && !o.cert && (code === 'ECONNRESET' || code === 'EPIPE'))) {
    return `TLS: ${peer} refused the connection in the handshake (${code}${message ? `: ${message}` : ''}): it requires a client certificate (observability.tls.clientCaFile); pass --cert FILE --key FILE (or SYNCLINE_API_CERT and SYNCLINE_API_KEY)`;
  }
  if (o.cert && (code === 'ECONNRESET' || code === 'EPIPE') && /^https:/.test(base)) {
    return `TLS: ${peer} closed the connection in the handshake (${code}: ${message}): it did not accept the client certificate ${o.cert} (is it signed by a CA of that server's observability.tls.clientCaFile?)`;
  }
  if (code === 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' || code === 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' || code === 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR' || code === 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN') {
    return `TLS: ${peer} refused the client certificate ${o.cert ?? ''} (${code}: ${message}): it is not signed by a CA that server trusts (observability.tls.clientCaFile)`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO') {
    return `TLS: ${peer} does not answer TLS (${code}: ${message}): it serves plain HTTP; use an http:// URL`;
  }
  if (code === 'HPE_INVALID_CONSTANT' || /HPE_|Parse Error/.test(message)) {
    return `${peer} did not answer HTTP (${code ?? ''} ${message}): it serves HTTPS (observability.tls); use an https:// URL`;
  }
  return `cannot reach ${peer} (${code ? `${code}: ` : ''}${message || errorMessage(err)})`;
}

/** A client of the running syncline at `base`. A --ca/--cert/--key (or their variables) with an http:// URL, a --cert without --key, or an unreadable file: fatal, named. */
export function apiClient(base: string, o: ApiClientOptions, env: NodeJS.ProcessEnv = process.env): ApiClient {
  const url = base.replace(/\/+$/, '');
  const ca = o.ca ?? (env.SYNCLINE_API_CA || undefined);
  const cert = o.cert ?? (env.SYNCLINE_API_CERT || undefined);
  const key = o.key ?? (env.SYNCLINE_API_KEY || undefined);
  const isHttps = /^https:/i.test(url);
  if (!isHttps && (ca || cert || key)) {
    throw fatal('CLI_TLS', `--ca/--cert/--key (or SYNCLINE_API_CA/CERT/KEY) are set but the running syncline's URL is ${url}: use https:// (the settings would be ignored, the token sent in clear text)`);
  }
  if ((cert === undefined) !== (key === undefined)) throw fatal('CLI_TLS', `a client certificate needs both --cert and --key (or SYNCLINE_API_CERT and SYNCLINE_API_KEY); got only ${cert ? 'the certificate' : 'the key'}`);
  const agent = isHttps
    ? new https.Agent({
        keepAlive: false,
        rejectUnauthorized: true,
        ...(ca ? { ca: readPem(ca, '--ca (SYNCLINE_API_CA)') } : {}),
        ...(cert ? { cert: readPem(cert, '--cert (SYNCLINE_API_CERT)') } : {}),
        ...(key ? { key: readPem(key, '--key (SYNCLINE_API_KEY)') } : {}),
      })
    : undefined;
  const headers = authHeaders(o.token, env);
  return {
    base: url,
    async fetch(path, init = {}) {
      const h = new Headers(init.headers);
      for (const [k, v] of Object.entries(headers)) h.set(k, v);
      try {
        return await (agent ? agentFetch(agent, url + path, { ...init, headers: h }) : fetch(url + path, { ...init, headers: h }));
      } catch (err) {
        throw new ApiUnreachable(describeApiFailure(url, err, { ca, cert }), codeOf(err).code ?? 'API_UNREACHABLE', err);
      }
    },
  };
}
