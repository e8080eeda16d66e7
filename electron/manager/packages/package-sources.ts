/**
 * Describes a package from wherever it is, for the resolver (package-resolver.ts), so every
 * source goes through the same graph, pins and conflict checks:
 * - the index (package-index.ts), with PyPI as the fallback for a name the index does not
 *   have (package-pypi.ts);
 * - a `package.json` by http(s) URL or `github:`/`gitlab:` in mip's format (`urls`, `hashes`,
 *   `deps`): relative `urls` are relative to the package.json, `github:`/`gitlab:` ones are
 *   rewritten to raw URLs at the package's ref, `hashes` come from the index, as mip does;
 * - a single `.py` by URL;
 * - a local folder (its package.json as above with paths relative to the folder, else its code
 *   and data files), a local `.py`, a local `.tar.gz` (an sdist: its `NAME-VER/` root stripped,
 *   setup files and READMEs left out).
 */
import { lstat, readFile, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { readTarGz, DEFAULT_MAX_ARCHIVE_BYTES } from './package-archive.js';
import type { PackageCache } from './package-cache.js';
import { boardFiles, type PackageFile } from './package-files.js';
import { PackageSourceError } from './package-http.js';
import { MAX_INDEX_JSON_BYTES, MAX_PACKAGE_FILE_BYTES, PackageNotFoundError, packageMetaSchema, type PackageIndex, type PackageMeta } from './package-index.js';
import { findPypiRelease, micropythonRequirements } from './package-pypi.js';
import { describeIndexPackage, REQUESTED_BY_USER, type DescribedFile, type PackageDescription, type PackageLookup } from './package-resolver.js';
import { repoRawUrl, type PackageSpec } from './package-spec.js';

/** Most bytes one package may bring, unpacked (every source). */
export const MAX_PACKAGE_BYTES = DEFAULT_MAX_ARCHIVE_BYTES;
/** Most files a local folder may hold (beyond that it is not a package folder). */
const MAX_FOLDER_FILES = 10_000;
const UNVERSIONED = 'unversioned';

export interface SourceOptions {
  index: PackageIndex;
  cache: PackageCache;
  /** PyPI base URL; '' turns the fallback off. */
  pypiUrl: string;
}

type UrlSpec = Extract<PackageSpec, { kind: 'url' }>;
type LocalSpec = Extract<PackageSpec, { kind: 'local' }>;

/** The lookup preparePackages gives the resolver: every source kind. */
export function createPackageLookup(options: SourceOptions): PackageLookup {
  return async (request) => {
    const { spec } = request;
    if (spec.kind === 'url') return spec.file ? describeUrlFile(spec) : describeUrlPackage(spec, options, request.requiredBy);
    if (spec.kind === 'local') return describeLocal(spec);
    try {
      return await describeIndexPackage(options.index, spec.name, request.exact, request.specifiers);
    } catch (err) {
      if (!(err instanceof PackageNotFoundError) || options.pypiUrl === '') throw err;
      const release = await findPypiRelease(spec.name, request, { pypiUrl: options.pypiUrl, cache: options.cache });
      if (!release) {
        const tried = /^micropython-/i.test(spec.name) ? spec.name : `${spec.name} or micropython-${spec.name}`;
        throw new PackageNotFoundError(err.packageName, err.version, err.index, `, nor on PyPI as ${tried}`);
      }
      const label = `${release.pypiName}-${release.version}.tar.gz`;
      const archive = await options.cache.getByHash(release.sha256, release.url, {
        what: `the sdist ${label}`,
        file: label,
        where: 'on PyPI',
        limit: MAX_PACKAGE_BYTES,
        server: 'PyPI',
        hint: 'check the PyPI URL and the network',
      });
      return {
        name: spec.name,
        version: release.version,
        source: `pypi ${release.pypiName} ${release.version}`,
        files: archiveFiles(archive, label),
        deps: release.requires,
      };
    }
  };
}

/** A single `.py` by URL: one file under the target, named as in the URL. */
function describeUrlFile(spec: UrlSpec): PackageDescription {
  const file = decodeURIComponent(new URL(spec.url).pathname.split('/').pop() ?? '');
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*\.py$/.test(file)) throw new PackageSourceError(`"${file}" (from ${spec.url}) is not a Python module file name`);
  return { name: file.slice(0, -3), version: spec.ref ?? UNVERSIONED, source: spec.shorthand ?? spec.url, files: [{ path: file, url: spec.url }], deps: [] };
}

async function describeUrlPackage(spec: UrlSpec, options: SourceOptions, requiredBy: string): Promise<PackageDescription> {
  const host = new URL(spec.url).host;
  const body = await options.cache.getDocument(spec.url, {
    what: `the package description ${spec.shorthand ?? spec.url}`,
    limit: MAX_INDEX_JSON_BYTES,
    server: host,
    hint: 'check the URL and the network',
  });
  const by = requiredBy === REQUESTED_BY_USER ? '' : `, needed by ${requiredBy}`;
  if (body === undefined) throw new PackageSourceError(`no package.json at ${spec.url} (404${by}): check the repository, path and ref`);
  const meta = parseMeta(body, spec.url);
  const base = spec.url.slice(0, spec.url.lastIndexOf('/'));
  const files: DescribedFile[] = [
    ...meta.hashes.map(([p, hash]) => ({ path: p, hash })),
    ...meta.urls.map(([p, url]) => ({ path: p, url: packageFileUrl(url, base, spec.ref, spec.url) })),
  ];
  return { name: urlPackageName(spec), version: meta.version || spec.ref || UNVERSIONED, source: spec.shorthand ?? spec.url, files, deps: meta.deps };
}

/** The package's name for the board's record: the folder holding its package.json (or the repository). */
function urlPackageName(spec: UrlSpec): string {
  if (spec.shorthand) {
    const parts =
      spec.shorthand
        .replace(/@[^@]*$/, '')
        .split(':')[1]
        ?.split('/') ?? [];
    return parts[parts.length - 1] ?? 'package';
  }
  const segments = new URL(spec.url).pathname.split('/').filter((s) => s !== '');
  const folder = segments[segments.length - 1]?.endsWith('.json') ? segments[segments.length - 2] : segments[segments.length - 1];
  return decodeURIComponent(folder ?? new URL(spec.url).hostname);
}

/** A `urls` entry as mip reads it: full (http(s), github:, gitlab:) or relative to the package.json; github:/gitlab: at the package's ref. */
function packageFileUrl(url: string, base: string, ref: string | undefined, from: string): string {
  const full = /^(https?:\/\/|github:|gitlab:)/i.test(url) ? url : `${base}/${url}`;
  const raw = rewriteRepoUrl(full, ref);
  if (!/^https?:\/\//i.test(raw)) throw new PackageSourceError(`${from} lists a file at "${url}", which is not an http(s), github: or gitlab: URL`);
  return raw;
}

/** mip's `_rewrite_url`: `github:org/repo/path` → the raw file at `ref` (HEAD when none). */
export function rewriteRepoUrl(url: string, ref = 'HEAD'): string {
  const via = url.startsWith('github:') ? 'github' : url.startsWith('gitlab:') ? 'gitlab' : undefined;
  if (!via) return url;
  const [org, repo, ...rest] = url.slice(7).split('/');
  if (!org || !repo || rest.length === 0) throw new PackageSourceError(`"${url}" names no file: expected ${via}:org/repo/path`);
  return repoRawUrl(via, org, repo, ref, rest.join('/'));
}

function parseMeta(body: Buffer, where: string): PackageMeta {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new PackageSourceError(`${where} is not JSON: a package.json in mip's format was expected`);
  }
  const parsed = packageMetaSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PackageSourceError(`${where} is not a package.json in mip's format: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

async function describeLocal(spec: LocalSpec): Promise<PackageDescription> {
  if (!path.isAbsolute(spec.path)) throw new PackageSourceError(`local package path "${spec.path}" must be absolute`);
  const info = await stat(spec.path).catch(() => undefined);
  if (!info) throw new PackageSourceError(`local package ${spec.path} does not exist`);
  const source = `local ${spec.path}`;
  if (spec.form === 'folder') {
    if (!info.isDirectory()) throw new PackageSourceError(`local package ${spec.path} is not a folder (give a folder, a .py or a .tar.gz)`);
    return describeFolder(spec.path);
  }
  const limit = spec.form === 'py' ? MAX_PACKAGE_FILE_BYTES : MAX_PACKAGE_BYTES;
  if (!info.isFile()) throw new PackageSourceError(`local package ${spec.path} is not a file`);
  if (info.size > limit) throw new PackageSourceError(`local package ${spec.path} is larger than ${limit} bytes: refused`);
  const data = await readFile(spec.path);
  const file = path.basename(spec.path);
  if (spec.form === 'py') return { name: file.replace(/\.py$/i, ''), version: 'local', source, files: [{ path: file, data }], deps: [] };
  const files = readTarGz(data);
  const pkgInfo = sdistInfo(files);
  const fallbackName = file.replace(/\.(tar\.gz|tgz)$/i, '').replace(/-\d[^-]*$/, '');
  return {
    name: pkgInfo.name ?? fallbackName,
    version: pkgInfo.version ?? 'local',
    source,
    files: archiveFiles(data, file, files),
    deps: micropythonRequirements(pkgInfo.requires, file),
  };
}

/** An archive's files that go to the board, each checked against the per-file limit. */
function archiveFiles(archive: Buffer, label: string, unpacked = readTarGz(archive)): DescribedFile[] {
  const files = boardFiles(unpacked, '/').map((f) => ({ path: f.boardPath.slice(1), data: f.data }));
  if (files.length === 0) throw new PackageSourceError(`${label} holds no .py or .mpy files to install`);
  for (const f of files)
    if (f.data.length > MAX_PACKAGE_FILE_BYTES) throw new PackageSourceError(`${label}: ${f.path} is larger than ${MAX_PACKAGE_FILE_BYTES} bytes: refused`);
  return files;
}

/** Name, version and Requires-Dist of an sdist's PKG-INFO (RFC 822 headers), when it has one. */
function sdistInfo(files: PackageFile[]): { name?: string; version?: string; requires: string[] } {
  const info = files.find((f) => /^[^/]+\/PKG-INFO$/.test(f.path) || f.path === 'PKG-INFO');
  if (!info) return { requires: [] };
  const headers =
    info.data
      .toString('utf8')
      .split(/\r?\n\r?\n/)[0]
      ?.split(/\r?\n/) ?? [];
  const value = (key: string) => headers.filter((h) => h.toLowerCase().startsWith(`${key.toLowerCase()}:`)).map((h) => h.slice(key.length + 1).trim());
  return { name: value('Name')[0], version: value('Version')[0], requires: value('Requires-Dist') };
}

async function describeFolder(folder: string): Promise<PackageDescription> {
  const source = `local ${folder}`;
  const name = path.basename(folder);
  const manifest = path.join(folder, 'package.json');
  const manifestInfo = await stat(manifest).catch(() => undefined);
  if (manifestInfo?.isFile()) {
    if (manifestInfo.size > MAX_INDEX_JSON_BYTES) throw new PackageSourceError(`${manifest} is larger than ${MAX_INDEX_JSON_BYTES} bytes: refused`);
    const meta = parseMeta(await readFile(manifest), manifest);
    const files: DescribedFile[] = meta.hashes.map(([p, hash]) => ({ path: p, hash }));
    for (const [p, url] of meta.urls) {
      if (/^(https?:\/\/|github:|gitlab:)/i.test(url)) files.push({ path: p, url: packageFileUrl(url, '', undefined, manifest) });
      else files.push({ path: p, data: await readInside(folder, url) });
    }
    return { name, version: meta.version || 'local', source, files, deps: meta.deps };
  }
  // Choose by path first, so files that never go to the board (tests, docs, data at the root) are not read.
  const found = await walk(folder);
  const chosen = boardFiles(
    found.map((f) => ({ path: f.path, data: Buffer.alloc(0) })),
    '/',
  );
  if (chosen.length === 0) throw new PackageSourceError(`${folder} holds no .py or .mpy files to install`);
  let total = 0;
  const files: DescribedFile[] = [];
  for (const f of chosen) {
    const size = found.find((x) => x.path === f.sourcePath)?.size ?? 0;
    if (size > MAX_PACKAGE_FILE_BYTES)
      throw new PackageSourceError(`${path.join(folder, f.sourcePath)} is larger than ${MAX_PACKAGE_FILE_BYTES} bytes: refused`);
    total += size;
    if (total > MAX_PACKAGE_BYTES) throw new PackageSourceError(`${folder} holds more than ${MAX_PACKAGE_BYTES} bytes of code and data: refused`);
    files.push({ path: f.boardPath.slice(1), data: await readFile(path.join(folder, f.sourcePath)) });
  }
  return { name, version: 'local', source, files, deps: [] };
}

/** A file a folder's package.json names relatively; it must stay inside the folder (links included). */
async function readInside(folder: string, relative: string): Promise<Buffer> {
  const root = await realpath(folder);
  const target = await realpath(path.resolve(folder, relative)).catch(() => undefined);
  if (!target) throw new PackageSourceError(`${path.join(folder, 'package.json')} lists "${relative}", which does not exist in ${folder}`);
  if (!target.startsWith(root + path.sep))
    throw new PackageSourceError(`${path.join(folder, 'package.json')} lists "${relative}", which is outside ${folder}: refused`);
  const info = await stat(target);
  if (!info.isFile()) throw new PackageSourceError(`"${relative}" in ${folder} is not a file`);
  if (info.size > MAX_PACKAGE_FILE_BYTES) throw new PackageSourceError(`"${relative}" in ${folder} is larger than ${MAX_PACKAGE_FILE_BYTES} bytes: refused`);
  return readFile(target);
}

/** Every regular file under `folder` with its size (hidden folders skipped; links refused, as in archives). */
async function walk(folder: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  const visit = async (relative: string) => {
    for (const entry of await readdir(path.join(folder, relative), { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules' || entry.name === '__pycache__') continue;
      const rel = relative ? `${relative}/${entry.name}` : entry.name;
      const full = path.join(folder, rel);
      if (entry.isSymbolicLink()) throw new PackageSourceError(`${full} is a symbolic link: a board has no links, copy the file instead`);
      if (entry.isDirectory()) {
        await visit(rel);
        continue;
      }
      if (!entry.isFile()) continue;
      if (out.length >= MAX_FOLDER_FILES) throw new PackageSourceError(`${folder} has more than ${MAX_FOLDER_FILES} files: is it really a package folder?`);
      out.push({ path: rel, size: (await lstat(full)).size });
    }
  };
  await visit('');
  return out;
}
