/**
 * Pagination (pure; ./source.test.ts): the first request of a listing, and from a response the
 * next request or the end. Kinds: none, cursor (a value in the body), page (numbers), offset
 * (offset/limit) and link (`Link: <…>; rel="next"`, RFC 8288, relative URLs resolved against the
 * request's).
 */
import { compilePath } from './jsonpath.js';
import type { Pagination } from './spec.js';

export interface PageRequest {
  url: string;
  /** 0-based number of the page within the listing (for messages and dead letters). */
  page: number;
}

/** The listing's first URL: the endpoint's URL with `params` (and the pagination's first parameters). */
export function firstPage(url: string, params: Record<string, string>, p: Pagination): PageRequest {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  if (p.type === 'page') {
    u.searchParams.set(p.param, String(p.start));
    if (p.sizeParam && p.size !== undefined) u.searchParams.set(p.sizeParam, String(p.size));
  } else if (p.type === 'offset') {
    u.searchParams.set(p.param, '0');
    u.searchParams.set(p.limitParam, String(p.limit));
  }
  return { url: u.toString(), page: 0 };
}

/** `Link` header → the URL of rel="next", resolved against `base` (null: none). */
export function nextLink(header: string | null, base: string): string | null {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!m) continue;
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(m[2]!);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (rels.includes('next')) return new URL(m[1]!, base).toString();
  }
  return null;
}

export type NextPage = (req: PageRequest, body: unknown, records: number, link: string | null) => PageRequest | null;

/** The function that gives the request after a response (null: the listing is complete). */
export function pager(p: Pagination): NextPage {
  switch (p.type) {
    case 'none':
      return () => null;
    case 'cursor': {
      const at = compilePath(p.path);
      return (req, body) => {
        const c = at(body);
        if (c === undefined || c === null || c === '' || c === false) return null;
        if (typeof c !== 'string' && typeof c !== 'number') throw new Error(`the cursor at ${p.path} is ${JSON.stringify(c).slice(0, 100)}, not a string or number`);
        const u = new URL(req.url);
        u.searchParams.set(p.param, String(c));
        return { url: u.toString(), page: req.page + 1 };
      };
    }
    case 'page':
      return (req, _body, records) => {
        if (records === 0 || (p.size !== undefined && records < p.size)) return null;
        const u = new URL(req.url);
        u.searchParams.set(p.param, String(p.start + req.page + 1));
        return { url: u.toString(), page: req.page + 1 };
      };
    case 'offset':
      return (req, _body, records) => {
        if (records < p.limit) return null;
        const u = new URL(req.url);
        u.searchParams.set(p.param, String(Number(u.searchParams.get(p.param) ?? '0') + records));
        return { url: u.toString(), page: req.page + 1 };
      };
    case 'link':
      return (req, _body, _records, link) => {
        const next = nextLink(link, req.url);
        return next === null || next === req.url ? null : { url: next, page: req.page + 1 };
      };
  }
}
