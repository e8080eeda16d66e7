/**
 * PyPI as the fallback source, as the original tool had it: when the index has no package
 * NAME, PyPI's JSON API is asked for NAME, then micropython-NAME, and a release's sdist is
 * installed. Unlike the original, versions are real: a pin (`pkg==1.0`, `pkg@1.0`) chooses
 * that release, and the `micropython-*` requirements of `requires_dist` are followed with
 * their PEP 440 specifiers (`>=`, `<`, `~=`, `!=`, commas). The sdist's sha256 published by
 * PyPI must match the download (package-cache.ts checks it).
 */
import { z } from 'zod';
import type { PackageCache } from './package-cache.js';
import { latestVersion, parseSpecifier, satisfies } from './package-files.js';
import { PackageSourceError } from './package-http.js';
import { PackageConflictError, newestFirst } from './package-resolver.js';

export const DEFAULT_PYPI_URL = 'https://pypi.org';
/** Largest PyPI JSON read (a package with hundreds of releases is a few hundred KB). */
export const MAX_PYPI_JSON_BYTES = 4 * 1024 * 1024;

const fileSchema = z.object({
  packagetype: z.string(),
  url: z.string().url(),
  digests: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) }).partial(),
});
const infoSchema = z.object({ version: z.string(), requires_dist: z.array(z.string()).nullish() });
const projectSchema = z.object({ info: infoSchema, releases: z.record(z.string(), z.array(fileSchema)).default({}) });
const releaseSchema = z.object({ info: infoSchema });

export interface PypiRelease {
  /** The PyPI project name that had it (NAME or micropython-NAME). */
  pypiName: string;
  version: string;
  /** The sdist's download URL and the sha256 PyPI publishes for it. */
  url: string;
  sha256: string;
  /** `micropython-*` requirements as mip-style deps: `[name, specifier or 'latest']`. */
  requires: Array<[string, string]>;
}

export interface PypiLookup {
  pypiUrl: string;
  cache: PackageCache;
}

/** The PyPI release for `name` meeting the pin and specifiers; undefined when PyPI has neither NAME nor micropython-NAME. */
export async function findPypiRelease(name: string, choice: { exact?: string; specifiers: string[] }, options: PypiLookup): Promise<PypiRelease | undefined> {
  const base = options.pypiUrl.replace(/\/+$/, '');
  const candidates = /^micropython-/i.test(name) ? [name] : [name, `micropython-${name}`];
  for (const pypiName of candidates) {
    const project = await getJson(options.cache, `${base}/pypi/${encodeURIComponent(pypiName)}/json`, projectSchema, `the PyPI page of ${pypiName}`);
    if (!project) continue;
    const withSdist = Object.entries(project.releases)
      .filter(([version, files]) => files.some((f) => f.packagetype === 'sdist') && isVersion(version))
      .map(([version]) => version);
    const version = chooseVersion(pypiName, withSdist, choice);
    const sdist = project.releases[version]?.find((f) => f.packagetype === 'sdist');
    if (!sdist?.digests.sha256)
      throw new PackageSourceError(`PyPI publishes no sha256 for the sdist of ${pypiName} ${version}: refused (it cannot be checked)`);
    let requiresDist = project.info.requires_dist ?? [];
    if (version !== project.info.version) {
      const release = await getJson(
        options.cache,
        `${base}/pypi/${encodeURIComponent(pypiName)}/${encodeURIComponent(version)}/json`,
        releaseSchema,
        `the PyPI page of ${pypiName} ${version}`,
      );
      requiresDist = release?.info.requires_dist ?? [];
    }
    return { pypiName, version, url: sdist.url, sha256: sdist.digests.sha256, requires: micropythonRequirements(requiresDist, `${pypiName} ${version}`) };
  }
  return undefined;
}

function isVersion(version: string): boolean {
  return safely(() => satisfies(version, '>=0')) ?? false;
}

function safely<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

function chooseVersion(pypiName: string, versions: string[], choice: { exact?: string; specifiers: string[] }): string {
  const has = versions.length ? `it has ${newestFirst(versions).slice(0, 8).join(', ')}` : 'it has no sdist releases';
  if (choice.exact !== undefined) {
    const exact = versions.find((v) => v === choice.exact) ?? versions.find((v) => safely(() => satisfies(v, `==${choice.exact}`)));
    if (exact === undefined) throw new PackageSourceError(`PyPI has ${pypiName} but no release ${choice.exact} with an sdist (${has})`);
    return exact;
  }
  const meeting = versions.filter((v) => choice.specifiers.every((s) => safely(() => satisfies(v, s)) === true));
  const best = latestVersion(meeting);
  if (best === undefined) {
    if (choice.specifiers.length === 0) throw new PackageSourceError(`PyPI has ${pypiName} but no release with an sdist to install`);
    throw new PackageConflictError(`no release of ${pypiName} on PyPI meets ${choice.specifiers.join(' and ')} (${has})`);
  }
  return best;
}

/**
 * `requires_dist` entries of MicroPython packages, as deps: `micropython-util (>=1.0,<2)` or
 * `micropython-util>=1.0` → `['micropython-util', '>=1.0,<2']`. Requirements for CPython
 * (any other name) and conditional ones (`; extra == "dev"`) are not the board's.
 */
export function micropythonRequirements(requiresDist: string[], label: string): Array<[string, string]> {
  const deps: Array<[string, string]> = [];
  for (const raw of requiresDist) {
    if (raw.includes(';')) continue;
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*\(?([^)]*)\)?\s*$/.exec(raw);
    if (!m?.[1] || !/^micropython-/i.test(m[1])) continue;
    const specifier = (m[2] ?? '').replace(/\s+/g, '');
    if (specifier === '') {
      deps.push([m[1], 'latest']);
      continue;
    }
    try {
      parseSpecifier(specifier);
    } catch (err) {
      throw new PackageSourceError(`${label} requires "${raw}", which cannot be read: ${(err as Error).message}`);
    }
    deps.push([m[1], specifier]);
  }
  return deps;
}

async function getJson<T>(cache: PackageCache, url: string, schema: z.ZodType<T>, what: string): Promise<T | undefined> {
  const body = await cache.getDocument(url, { limit: MAX_PYPI_JSON_BYTES, what, server: 'PyPI', hint: 'check the PyPI URL and the network' });
  if (body === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new PackageSourceError(`PyPI answered ${url} with something that is not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PackageSourceError(`${what} (${url}) is malformed: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
