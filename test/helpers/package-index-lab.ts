/**
 * A package index for tests: a real HTTP server on 127.0.0.1 serving fixture packages in the
 * micropython-lib index v2 layout (what mip and the service read), a PyPI-like JSON API for
 * the sdist fallback, and plain files (a `package.json` or `.py` given by URL). Nothing here
 * ever reaches the internet. It records every path requested, so tests can assert that
 * nothing was downloaded twice, and it can go "offline" (every connection destroyed, as when
 * the network is down) or answer 5xx (an index that is up but broken).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { compareVersions } from '../../electron/manager/packages/package-files.js';

export interface FixturePackage {
  name: string;
  version: string;
  /** Path in the package → content. */
  files: Record<string, string | Buffer>;
  /** `[name, version or 'latest']`, as mip lists them (a github:/URL dependency is fine too). */
  deps?: Array<[string, string]>;
}

export interface SdistOptions {
  /** PyPI `info.requires_dist` of this release, e.g. `['micropython-util (>=1.0,<2)']`. */
  requiresDist?: string[];
  /** The sha256 PyPI publishes for the sdist; default the real one (set another to test a mismatch). */
  sha256?: string;
}

export interface PackageIndexLab {
  /** Index base, e.g. http://127.0.0.1:PORT/pi/v2 (no trailing slash). */
  url: string;
  /** A PyPI-like JSON API on the same server: `{pypiUrl}/pypi/NAME/json` and `{pypiUrl}/pypi/NAME/VERSION/json`. */
  pypiUrl: string;
  /** Every path requested, in order. */
  requests: string[];
  /** Publishes another package (it becomes latest when its version is the highest). */
  add(pkg: FixturePackage): void;
  /** Serves other bytes for that file's hash (a hash mismatch on download). */
  corruptFile(name: string, version: string, path: string): void;
  /** Publishes a PyPI sdist release of `name` (the PyPI name, e.g. micropython-foo). */
  addSdist(name: string, version: string, tarGz: Buffer, options?: SdistOptions): void;
  /** Serves `content` at `path` (starting with /) and returns its full URL: a package.json or .py given by URL. */
  addStatic(path: string, content: string | Buffer): string;
  /** On: every request fails at the socket (connection destroyed), like no network. */
  offline(on: boolean): void;
  /** A status (e.g. 503) every request is answered with, or undefined for normal service. */
  failWith(status: number | undefined): void;
  stop(): Promise<void>;
}

const INDEX_BASE = '/pi/v2';
const PYPI_BASE = '/pypi-lab';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const toBuffer = (data: string | Buffer) => (typeof data === 'string' ? Buffer.from(data, 'utf8') : data);

interface Release {
  version: string;
  file: string;
  sha256: string;
  requiresDist: string[];
}

export async function startPackageIndexLab(packages: FixturePackage[]): Promise<PackageIndexLab> {
  /** Index package descriptions by `name` then version. */
  const published = new Map<string, Map<string, string>>();
  /** Files by their 8-hex short hash. */
  const files = new Map<string, Buffer>();
  const corrupted = new Set<string>();
  const releases = new Map<string, Release[]>();
  const statics = new Map<string, Buffer>();
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  let isOffline = false;
  let failStatus: number | undefined;

  const add = (pkg: FixturePackage) => {
    const hashes: Array<[string, string]> = [];
    for (const [path, content] of Object.entries(pkg.files)) {
      const data = toBuffer(content);
      const short = sha256(data).slice(0, 8);
      files.set(short, data);
      hashes.push([path, short]);
    }
    const json = JSON.stringify({ hashes, deps: pkg.deps ?? [], version: pkg.version });
    const versions = published.get(pkg.name) ?? new Map<string, string>();
    versions.set(pkg.version, json);
    published.set(pkg.name, versions);
  };
  for (const pkg of packages) add(pkg);

  const latest = (name: string): string | undefined => {
    const versions = published.get(name);
    if (!versions) return undefined;
    const newest = [...versions.keys()].sort(compareVersions).pop();
    return newest === undefined ? undefined : versions.get(newest);
  };

  const send = (res: ServerResponse, status: number, body: string | Buffer, type = 'application/octet-stream') =>
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);

  const pypiJson = (name: string, origin: string): string | undefined => {
    const list = releases.get(name.toLowerCase());
    if (!list || list.length === 0) return undefined;
    const newest = [...list].sort((a, b) => compareVersions(a.version, b.version)).pop() as Release;
    const releaseMap: Record<string, unknown[]> = {};
    for (const r of list) {
      releaseMap[r.version] = [{ packagetype: 'sdist', filename: r.file, url: `${origin}${PYPI_BASE}/packages/${r.file}`, digests: { sha256: r.sha256 } }];
    }
    return JSON.stringify({
      info: { name, version: newest.version, requires_dist: newest.requiresDist.length ? newest.requiresDist : null },
      releases: releaseMap,
    });
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    requests.push(path);
    if (isOffline) {
      req.socket.destroy();
      return;
    }
    if (failStatus !== undefined) return send(res, failStatus, 'the lab index is failing on purpose', 'text/plain');
    const origin = `http://${req.headers.host ?? '127.0.0.1'}`;
    const description = new RegExp(`^${INDEX_BASE}/package/(?:py|6)/([^/]+)/([^/]+)\\.json$`).exec(path);
    if (description) {
      const [, name = '', version = ''] = description;
      const json = version === 'latest' ? latest(name) : published.get(name)?.get(version);
      return json === undefined ? send(res, 404, 'Not Found', 'text/plain') : send(res, 200, json, 'application/json');
    }
    const file = new RegExp(`^${INDEX_BASE}/file/([0-9a-f]{2})/([0-9a-f]{8})$`).exec(path);
    if (file && file[2]?.startsWith(file[1] ?? '')) {
      const data = files.get(file[2]);
      if (data === undefined) return send(res, 404, 'Not Found', 'text/plain');
      return send(res, 200, corrupted.has(file[2]) ? Buffer.concat([data, Buffer.from('# tampered\n')]) : data);
    }
    const pypi = new RegExp(`^${PYPI_BASE}/pypi/([^/]+)/json$`).exec(path);
    if (pypi) {
      const json = pypiJson(decodeURIComponent(pypi[1] ?? ''), origin);
      return json === undefined ? send(res, 404, JSON.stringify({ message: 'Not Found' }), 'application/json') : send(res, 200, json, 'application/json');
    }
    const release = new RegExp(`^${PYPI_BASE}/pypi/([^/]+)/([^/]+)/json$`).exec(path);
    if (release) {
      const found = releases.get(decodeURIComponent(release[1] ?? '').toLowerCase())?.find((r) => r.version === decodeURIComponent(release[2] ?? ''));
      const json = found && JSON.stringify({ info: { version: found.version, requires_dist: found.requiresDist.length ? found.requiresDist : null } });
      return json === undefined ? send(res, 404, JSON.stringify({ message: 'Not Found' }), 'application/json') : send(res, 200, json, 'application/json');
    }
    const sdist = new RegExp(`^${PYPI_BASE}/packages/([^/]+)$`).exec(path);
    if (sdist) {
      const data = statics.get(path);
      return data === undefined ? send(res, 404, 'Not Found', 'text/plain') : send(res, 200, data, 'application/gzip');
    }
    const data = statics.get(path);
    return data === undefined ? send(res, 404, 'Not Found', 'text/plain') : send(res, 200, data);
  };

  const server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${origin}${INDEX_BASE}`,
    pypiUrl: `${origin}${PYPI_BASE}`,
    requests,
    add,
    corruptFile(name, version, path) {
      const json = published.get(name)?.get(version);
      if (json === undefined) throw new Error(`the lab has no package ${name} ${version}`);
      const entry = (JSON.parse(json) as { hashes: Array<[string, string]> }).hashes.find(([p]) => p === path);
      if (!entry) throw new Error(`${name} ${version} has no file ${path}`);
      corrupted.add(entry[1]);
    },
    addSdist(name, version, tarGz, options = {}) {
      const file = `${name}-${version}.tar.gz`;
      statics.set(`${PYPI_BASE}/packages/${file}`, tarGz);
      const list = (releases.get(name.toLowerCase()) ?? []).filter((r) => r.version !== version);
      list.push({ version, file, sha256: options.sha256 ?? sha256(tarGz), requiresDist: options.requiresDist ?? [] });
      releases.set(name.toLowerCase(), list);
    },
    addStatic(path, content) {
      if (!path.startsWith('/')) throw new Error(`static path ${path} must start with /`);
      statics.set(path, toBuffer(content));
      return `${origin}${path}`;
    },
    offline(on) {
      isOffline = on;
      // Kept-alive connections would otherwise still carry requests: a dead network drops them all.
      if (on) for (const socket of sockets) socket.destroy();
    },
    failWith(status) {
      failStatus = status;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TarEntry {
  name: string;
  data?: string | Buffer;
  /** Default 'file'; a symlink's target is `linkname`, else its data. `pax`: an extended header whose records are `data`. */
  type?: 'file' | 'symlink' | 'hardlink' | 'dir' | 'pax';
  linkname?: string;
}

/** A ustar header field: text, NUL-padded to `length`. */
function writeField(header: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar field ${JSON.stringify(value)} is longer than ${length} bytes`);
  bytes.copy(header, offset);
}

const octal = (value: number, length: number) => value.toString(8).padStart(length - 1, '0');

/**
 * Writes a `.tar.gz` for fixtures (ustar headers; names longer than 100 bytes split into
 * prefix/name). Names are written as given, `../` and absolute ones included: they exist to
 * test that the reader refuses them.
 */
export function makeTarGz(entries: TarEntry[]): Buffer {
  return gzipSync(makeTar(entries));
}

const TYPE_FLAGS = { file: '0', hardlink: '1', symlink: '2', dir: '5', pax: 'x' } as const;

/** The same archive uncompressed. */
export function makeTar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const data = type === 'file' || type === 'pax' ? toBuffer(entry.data ?? '') : Buffer.alloc(0);
    const header = Buffer.alloc(512);
    let name = entry.name;
    let prefix = '';
    if (Buffer.byteLength(name) > 100) {
      const cut = name.lastIndexOf('/', name.length - 2);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    }
    writeField(header, 0, 100, name);
    writeField(header, 100, 8, octal(type === 'dir' ? 0o755 : 0o644, 8));
    writeField(header, 108, 8, octal(0, 8));
    writeField(header, 116, 8, octal(0, 8));
    writeField(header, 124, 12, octal(data.length, 12));
    writeField(header, 136, 12, octal(0, 12));
    header.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
    writeField(header, 156, 1, TYPE_FLAGS[type]);
    const link = entry.linkname ?? (type === 'symlink' ? toBuffer(entry.data ?? '').toString('utf8') : undefined);
    if (link !== undefined) writeField(header, 157, 100, link);
    writeField(header, 257, 6, 'ustar');
    writeField(header, 263, 2, '00');
    writeField(header, 345, 155, prefix);
    let sum = 0;
    for (const byte of header) sum += byte;
    writeField(header, 148, 8, `${octal(sum, 7)}\0`);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
