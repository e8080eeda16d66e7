/**
 * Decides what of a package goes to the board, and where: only code (`.py`, `.mpy`) and the
 * data files inside the package's own folders, never READMEs, licences, setup files, PKG-INFO,
 * `*.egg-info/`, tests, docs or examples (the original tool uploaded READMEs). Also the small
 * PyPI-style version handling the sdist fallback needs (`micropython-foo==1.0`).
 */
import path from 'node:path';
import { ManagerError, type ErrorKind } from '../errors.js';

export interface PackageFile {
  /** Relative POSIX path inside the package source (archive, folder). */
  path: string;
  data: Buffer;
}

export interface BoardFile {
  /** Absolute path on the board, e.g. `/lib/foo/__init__.py`. */
  boardPath: string;
  /** Where the file came from in the package source. */
  sourcePath: string;
  data: Buffer;
}

export const DEFAULT_INSTALL_TARGET = '/lib';

/** An install target folder that is not an absolute board path. */
export class InvalidInstallTargetError extends ManagerError {
  override name = 'InvalidInstallTargetError';
  readonly kind: ErrorKind = 'bad_request';
}

/** A version or requirement that cannot be parsed. */
export class InvalidVersionError extends ManagerError {
  override name = 'InvalidVersionError';
  readonly kind: ErrorKind = 'bad_request';
}

const CODE = /\.(py|mpy)$/;
/** Files that describe the package rather than being part of it, wherever they are. */
const DOCUMENT = /^(readme|licen[cs]e|copying|changelog|changes|history|authors|contributors|notice|manifest)(\.[^/]*)?$/i;
const SETUP_FILES = new Set(['setup.py', 'setup.cfg', 'pyproject.toml', 'pkg-info', 'manifest.in', 'conftest.py', 'tox.ini', 'requirements.txt']);
const SKIPPED_FOLDERS = new Set(['test', 'tests', 'doc', 'docs', 'example', 'examples', '__pycache__']);
/** Files the sdist root is recognised by. */
const SDIST_MARKERS = new Set(['PKG-INFO', 'setup.py', 'setup.cfg', 'pyproject.toml']);

/** Checks a target folder (`/lib`, `/flash/lib`) and returns it without a trailing slash. */
export function installTarget(target: string = DEFAULT_INSTALL_TARGET): string {
  if (!target.startsWith('/') || /[\s\\\0]/.test(target) || target.split('/').some((s) => s === '..' || s === '.')) {
    throw new InvalidInstallTargetError(
      `install target ${JSON.stringify(target)} must be an absolute board path like /lib, without "..", ".", spaces or backslashes`,
    );
  }
  const normal = path.posix.normalize(target).replace(/\/+$/, '');
  return normal === '' ? '/' : normal;
}

/**
 * The single top folder of an sdist (`micropython-foo-1.0/`), if the files have one: every
 * file lies under it and it holds a PKG-INFO/setup file or is named NAME-VERSION. A lone top
 * folder without those is the package itself (`foo/__init__.py`) and is kept.
 */
function sdistRoot(files: PackageFile[]): string | undefined {
  const tops = new Set(files.map((f) => (f.path.includes('/') ? f.path.slice(0, f.path.indexOf('/')) : '')));
  const [top] = tops;
  if (tops.size !== 1 || !top) return undefined;
  const hasMarker = files.some((f) => SDIST_MARKERS.has(f.path.slice(top.length + 1)));
  return hasMarker || /^[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*-\d[^/]*$/.test(top) ? top : undefined;
}

/**
 * Whether a file describes its package rather than being part of it (a README, licence, setup
 * file, metadata folder, dot file). A package that lists such a file explicitly (an index
 * package's `hashes`, a package.json's `urls`) still does not get it onto the board.
 */
export function isPackageMetadata(relative: string): boolean {
  const segments = relative.split('/');
  const file = segments[segments.length - 1] ?? '';
  const folders = segments.slice(0, -1);
  if (segments.some((s) => s.startsWith('.'))) return true; // .github/, .gitignore, editor files
  if (folders.some((f) => f.endsWith('.egg-info') || f.endsWith('.dist-info'))) return true;
  return DOCUMENT.test(file) || SETUP_FILES.has(file.toLowerCase()) || file.endsWith('.pyc');
}

/** Whether a file (path relative to the package root) belongs on the board. */
function belongsOnBoard(relative: string): boolean {
  const segments = relative.split('/');
  const file = segments[segments.length - 1] ?? '';
  const folders = segments.slice(0, -1);
  if (isPackageMetadata(relative)) return false;
  if (folders.some((f) => SKIPPED_FOLDERS.has(f.toLowerCase()))) return false;
  if (CODE.test(file)) return true;
  // Data files only inside a package folder: loose files at the root are the project's, not the module's.
  return folders.length > 0;
}

/**
 * Maps a package's files to board paths under `target`: the sdist top folder and a `src/`
 * layout are stripped, then only code and package data are kept. A lone `.py` maps to
 * `/lib/<file>`. Sorted by board path so plans and records are stable.
 */
export function boardFiles(files: PackageFile[], target: string = DEFAULT_INSTALL_TARGET): BoardFile[] {
  const base = installTarget(target);
  const root = sdistRoot(files);
  let relative = files.map((f) => ({ ...f, rel: root ? f.path.slice(root.length + 1) : f.path })).filter((f) => f.rel !== '');
  const inSrc = relative.filter((f) => f.rel.startsWith('src/') && CODE.test(f.rel));
  if (inSrc.length > 0 && !relative.some((f) => !f.rel.includes('/') && CODE.test(f.rel) && !SETUP_FILES.has(f.rel.toLowerCase()))) {
    relative = relative.filter((f) => f.rel.startsWith('src/')).map((f) => ({ ...f, rel: f.rel.slice(4) }));
  }
  return relative
    .filter((f) => belongsOnBoard(f.rel))
    .map((f) => ({ boardPath: path.posix.join(base, f.rel), sourcePath: f.path, data: f.data }))
    .sort((a, b) => (a.boardPath < b.boardPath ? -1 : a.boardPath > b.boardPath ? 1 : 0));
}

/** Ranks of pre-release kinds (PEP 440 spellings folded together). */
const PRE_RANK: Record<string, number> = { a: 0, alpha: 0, b: 1, beta: 1, c: 2, rc: 2, pre: 2, preview: 2 };
const VERSION =
  /^v?(\d+(?:\.\d+)*)(?:[-_.]?(alpha|beta|preview|pre|rc|a|b|c)[-_.]?(\d*))?(?:(?:[-_.]?(?:post|rev|r)[-_.]?(\d*))|-(\d+))?(?:[-_.]?dev[-_.]?(\d*))?$/i;

type VersionKey = [number[], number, number, number, number];

/**
 * A sort key after PEP 440 (without epochs or local parts): release numbers, then
 * dev-only < a < b < rc < final, then post, then dev. `1.0.dev1 < 1.0a1 < 1.0rc1 < 1.0 < 1.0.post1`.
 */
function parseVersion(version: string): VersionKey {
  const m = VERSION.exec(version.trim());
  if (!m?.[1]) throw new InvalidVersionError(`version ${JSON.stringify(version)} is not a dotted number like 1.2.3 (optionally a1, b2, rc1, .post1, .dev1)`);
  const release = m[1].split('.').map(Number);
  while (release.length > 1 && release[release.length - 1] === 0) release.pop(); // 1.0 == 1.0.0
  const hasPost = m[4] !== undefined || m[5] !== undefined;
  const hasDev = m[6] !== undefined;
  const preKind = m[2] ? (PRE_RANK[m[2].toLowerCase()] ?? 2) : hasDev && !hasPost ? -1 : 3;
  const preNumber = m[2] ? Number(m[3] || 0) : 0;
  const post = hasPost ? Number(m[4] || m[5] || 0) : -1;
  const dev = hasDev ? Number(m[6] || 0) : Number.POSITIVE_INFINITY;
  return [release, preKind, preNumber, post, dev];
}

/** Compares two versions: negative if a < b, 0 if equal, positive if a > b. */
export function compareVersions(a: string, b: string): number {
  const [ra, ...restA] = parseVersion(a);
  const [rb, ...restB] = parseVersion(b);
  for (let i = 0; i < Math.max(ra.length, rb.length); i++) {
    const diff = (ra[i] ?? 0) - (rb[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  for (let i = 0; i < restA.length; i++) {
    const x = restA[i] ?? 0;
    const y = restB[i] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Whether a version is a pre-release or development release (not picked unless pinned). */
export function isPreRelease(version: string): boolean {
  const [, preKind, , , dev] = parseVersion(version);
  return preKind < 3 || dev !== Number.POSITIVE_INFINITY;
}

/** The newest of `versions`, final releases preferred over pre-releases; undefined if none. */
export function latestVersion(versions: string[]): string | undefined {
  const sorted = [...versions].sort(compareVersions);
  return sorted.filter((v) => !isPreRelease(v)).pop() ?? sorted.pop();
}

const CLAUSE = /^(===|==|!=|~=|>=|<=|>|<)\s*([0-9A-Za-z][0-9A-Za-z.+_-]*?)(\.\*)?$/;

/**
 * Splits a PEP 440 specifier (`>=1.0, <2`, `~=1.4`, `!=1.2.*`) into normalised clauses;
 * throws naming the clause it cannot read. An empty text means any version.
 */
export function parseSpecifier(text: string): string[] {
  const clauses = text
    .split(',')
    .map((c) => c.replace(/\s+/g, ''))
    .filter((c) => c !== '');
  for (const clause of clauses) {
    const m = CLAUSE.exec(clause);
    if (!m?.[1] || !m[2]) throw new InvalidVersionError(`version requirement ${JSON.stringify(clause)} is not like >=1.0, <2, ==1.2, ~=1.4 or !=1.3`);
    if (m[3] && m[1] !== '==' && m[1] !== '!=') throw new InvalidVersionError(`version requirement ${JSON.stringify(clause)}: ".*" only goes with == or !=`);
    if (m[1] !== '===') parseVersion(m[2]);
    if (m[1] === '~=' && !m[2].includes('.'))
      throw new InvalidVersionError(`version requirement ${JSON.stringify(clause)}: ~= needs at least two numbers (~=1.4)`);
  }
  return clauses;
}

/** Whether `version` meets every clause of `specifier` (PEP 440 without epochs or local versions). */
export function satisfies(version: string, specifier: string): boolean {
  return parseSpecifier(specifier).every((clause) => {
    const [, op = '', wanted = '', star] = CLAUSE.exec(clause) ?? [];
    if (op === '===') return version === wanted;
    if (star) {
      // `==1.2.*`: the release starts with 1.2 (padding with zeros, as 1.2 == 1.2.0).
      const prefix = wanted.split('.').map(Number);
      const [release] = parseVersion(version);
      const match = prefix.every((n, i) => (release[i] ?? 0) === n);
      return op === '==' ? match : !match;
    }
    const cmp = compareVersions(version, wanted);
    switch (op) {
      case '==':
        return cmp === 0;
      case '!=':
        return cmp !== 0;
      case '>=':
        return cmp >= 0;
      case '<=':
        return cmp <= 0;
      case '>':
        return cmp > 0;
      case '<':
        return cmp < 0;
      default: {
        // `~=1.4.2` means >=1.4.2 and ==1.4.*.
        const upper = wanted.split('.').slice(0, -1);
        return cmp >= 0 && satisfies(version, `==${upper.join('.')}.*`);
      }
    }
  });
}
