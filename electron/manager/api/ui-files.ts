/**
 * Serves the built renderer (dist/renderer) at `/`: index.html revalidated on every load,
 * hashed assets cached for good, and a strict Content-Security-Policy on everything (no
 * inline script, connections only to this origin). Unknown paths that look like pages get
 * index.html, so a reload on any view works.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type http from 'node:http';

/**
 * No inline or foreign script; styles may be inline because the editor and the terminal
 * set element styles at run time (CodeMirror, xterm).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export function securityHeaders(): Record<string, string> {
  return { ...SECURITY_HEADERS };
}

/** A small HTML page in the UI's style, for sign-in errors and a missing build. */
export function messagePage(title: string, text: string): string {
  const escape = (value: string) => value.replace(/[&<>"]/g, (char) => `&#${char.charCodeAt(0)};`);
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">` +
    `<title>${escape(title)} — Cloudmanager</title><style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}` +
    `code{background:#8882;padding:.1em .3em;border-radius:4px}</style></head><body><h1>${escape(title)}</h1><p>${text}</p></body></html>`
  );
}

export class UiFiles {
  constructor(private readonly root: string) {}

  /** Answers a GET for a UI path; returns false when `pathname` is not the UI's. */
  async serve(pathname: string, response: http.ServerResponse): Promise<boolean> {
    let relative: string;
    try {
      relative = decodeURIComponent(pathname).replace(/^\/+/, '');
    } catch {
      return false;
    }
    if (relative.includes('\0') || relative.split('/').some((segment) => segment === '..')) return false;
    const isAsset = relative.startsWith('assets/');
    const looksLikePage = relative === '' || !path.extname(relative);
    const file = looksLikePage ? path.join(this.root, 'index.html') : path.join(this.root, relative);
    if (!file.startsWith(this.root + path.sep)) return false;
    let body: Buffer;
    try {
      if (!(await stat(file)).isFile()) return false;
      body = await readFile(file);
    } catch {
      if (!looksLikePage) return false;
      const page = messagePage('The user interface is not built', 'Run <code>npm run build</code> in the Cloudmanager folder, then reload this page.');
      response.writeHead(503, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(page);
      return true;
    }
    response.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': String(body.length),
      // Asset names carry a content hash: they never change. The page itself is revalidated.
      'cache-control': isAsset ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    response.end(body);
    return true;
  }
}
