/**
 * What a user types to name a MicroPython package (`mbm board-install BOARD SPEC…`), parsed
 * into where it comes from. The forms are mip's: an index name with an optional pin
 * (`name`, `name@1.0`, `name==1.0`), the `github:`/`gitlab:` shorthands (mapped to the same
 * raw-file URLs mip uses), an http(s) URL of a `package.json` or a single `.py`, and, beyond
 * mip, a local folder, `.py` file or `.tar.gz` on the host.
 */
import { ManagerError, type ErrorKind } from '../errors.js';

/** A package spec a user typed cannot be understood; the message says which form was expected. */
export class PackageSpecError extends ManagerError {
  override name = 'PackageSpecError';
  readonly kind: ErrorKind = 'bad_request';
}

export type PackageSpec =
  /** A package of the index; `version` undefined means the latest. */
  | { kind: 'index'; name: string; version?: string }
  /** A `package.json` (`file: false`) or a single `.py` (`file: true`) fetched over http(s). */
  | {
      kind: 'url';
      url: string;
      file: boolean;
      via: 'github' | 'gitlab' | 'url';
      /** github:/gitlab: only: the branch, tag or commit (mip rewrites the package's own github: URLs to it) and the shorthand as typed. */ ref?: string;
      shorthand?: string;
    }
  /** A path on the host: a package folder, a single `.py`, or a `.tar.gz` (sdist). */
  | { kind: 'local'; path: string; form: 'folder' | 'py' | 'tar.gz' };

/** Index names as micropython-lib spells them (`aioble-core`, `umqtt.simple`, `base64`). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Versions as the index publishes them (`1.0`, `0.2.1`, `1.0rc1`, `2.0.post1`). */
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]*$/;
/** One segment of a repository path or ref: no spaces, no `..` tricks. */
const SEGMENT = /^[A-Za-z0-9._~+-]+$/;

/** Parses one spec; throws PackageSpecError with the reason and the forms it accepts. */
export function parsePackageSpec(input: string): PackageSpec {
  if (typeof input !== 'string' || input.trim() === '')
    throw new PackageSpecError('empty package spec: give a name like "aioble", "name@1.0", "github:org/repo" or a path');
  const spec = input.trim();
  if (/\s/.test(spec)) throw new PackageSpecError(`package spec "${spec}" contains spaces: give one package per argument`);
  if (spec.startsWith('github:') || spec.startsWith('gitlab:')) return parseRepoShorthand(spec);
  if (/^https?:\/\//i.test(spec)) return parseUrl(spec);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new PackageSpecError(`package URL "${spec}" must use http:// or https://`);
  if (looksLikePath(spec)) return localSpec(spec);
  return parseIndexSpec(spec);
}

function parseIndexSpec(spec: string): PackageSpec {
  const pin = spec.indexOf('==') >= 0 ? spec.indexOf('==') : spec.indexOf('@');
  const name = pin >= 0 ? spec.slice(0, pin) : spec;
  const version = pin >= 0 ? spec.slice(pin + (spec.startsWith('==', pin) ? 2 : 1)) : undefined;
  if (!NAME.test(name)) throw new PackageSpecError(`"${name}" is not a package name (letters, digits, ".", "-", "_"), in "${spec}"`);
  if (version === undefined || version === 'latest') return { kind: 'index', name };
  if (!VERSION.test(version)) throw new PackageSpecError(`"${version}" is not a version (e.g. 1.0 or 0.2.1), in "${spec}"`);
  return { kind: 'index', name, version };
}

/** `github:org/repo[/path][@ref]` → the raw URL mip fetches: a `.py` path is one file, anything else a folder with a package.json. */
function parseRepoShorthand(spec: string): PackageSpec {
  const via = spec.startsWith('github:') ? 'github' : 'gitlab';
  const rest = spec.slice(via.length + 1);
  const at = rest.lastIndexOf('@');
  const where = at >= 0 ? rest.slice(0, at) : rest;
  const ref = at >= 0 ? rest.slice(at + 1) : 'HEAD';
  const parts = where.split('/').filter((p) => p !== '');
  const usage = `expected ${via}:org/repo[/path][@ref]`;
  if (parts.length < 2) throw new PackageSpecError(`"${spec}" names no repository: ${usage}`);
  if (ref === '' || !/^[A-Za-z0-9._/+-]+$/.test(ref) || ref.split('/').includes('..'))
    throw new PackageSpecError(`"${ref}" is not a branch, tag or commit, in "${spec}": ${usage}`);
  for (const part of parts)
    if (!SEGMENT.test(part) || part === '..' || part === '.') throw new PackageSpecError(`"${part}" is not a valid path part, in "${spec}": ${usage}`);
  const [org, repo, ...sub] = parts;
  const file = sub.length > 0 && (sub[sub.length - 1] ?? '').endsWith('.py');
  const tail = file ? sub.join('/') : [...sub, 'package.json'].join('/');
  return { kind: 'url', url: repoRawUrl(via, org!, repo!, ref, tail), file, via, ref, shorthand: `${via}:${parts.join('/')}@${ref}` };
}

/** Where GitHub and GitLab serve a repository's file `tail` at `ref` as it is (what mip fetches). */
export function repoRawUrl(via: 'github' | 'gitlab', org: string, repo: string, ref: string, tail: string): string {
  return via === 'github' ? `https://raw.githubusercontent.com/${org}/${repo}/${ref}/${tail}` : `https://gitlab.com/${org}/${repo}/-/raw/${ref}/${tail}`;
}

function parseUrl(spec: string): PackageSpec {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new PackageSpecError(`"${spec}" is not a valid URL`);
  }
  if (url.hostname === '') throw new PackageSpecError(`"${spec}" names no host`);
  if (url.pathname.endsWith('.py')) return { kind: 'url', url: url.href, file: true, via: 'url' };
  // mip: a URL that is not a .py names a package folder unless it already points at its JSON.
  const href = url.pathname.endsWith('.json') ? url.href : `${url.href.replace(/\/$/, '')}/package.json`;
  return { kind: 'url', url: href, file: false, via: 'url' };
}

function looksLikePath(spec: string): boolean {
  return (
    /^(\.{1,2}([\\/]|$)|[\\/]|~[\\/]|[A-Za-z]:[\\/])/.test(spec) ||
    /[\\/]/.test(spec) ||
    /\.py$/i.test(spec) ||
    /\.tar\.gz$/i.test(spec) ||
    /\.tgz$/i.test(spec)
  );
}

function localSpec(spec: string): PackageSpec {
  if (/\.py$/i.test(spec)) return { kind: 'local', path: spec, form: 'py' };
  if (/\.(tar\.gz|tgz)$/i.test(spec)) return { kind: 'local', path: spec, form: 'tar.gz' };
  return { kind: 'local', path: spec, form: 'folder' };
}

/** The spec as a user would type it back (for messages and records). */
export function describePackageSpec(spec: PackageSpec): string {
  if (spec.kind === 'index') return spec.version ? `${spec.name}@${spec.version}` : spec.name;
  return spec.kind === 'url' ? spec.url : spec.path;
}
