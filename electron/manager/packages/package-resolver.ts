/**
 * Resolves what a user asked to install into an install plan, on the host and before a
 * single file is downloaded: every package's description is read from the index, its
 * dependencies followed recursively, pins honoured, and the whole graph checked (a cycle or
 * two different pins of one package stop it, naming who asked for what). The plan lists the
 * packages in install order (dependencies first) with each file's board path and hash; the
 * files themselves are fetched afterwards (PackageIndex.getFiles checks each hash).
 */
import { ManagerError, type ErrorKind } from '../errors.js';
import { PackageIndexError, PackageNotFoundError, type PackageIndex, type PackageMeta } from './package-index.js';
import { describePackageSpec, parsePackageSpec, type PackageSpec } from './package-spec.js';

/** The packages asked for cannot be installed together (conflicting pins, a cycle, two packages owning one file). */
export class PackageConflictError extends ManagerError {
  override name = 'PackageConflictError';
  readonly kind: ErrorKind = 'bad_request';
}

/** A source the resolver cannot use yet (anything but the index, for now). */
export class PackageSourceNotSupportedError extends ManagerError {
  override name = 'PackageSourceNotSupportedError';
  readonly kind: ErrorKind = 'bad_request';
}

/** A dependency named by a package is missing from the index. */
export class MissingDependencyError extends PackageIndexError {
  override name = 'MissingDependencyError';
}

export const DEFAULT_TARGET_DIR = '/lib';
/** What a requirement typed on the command line is "required by" in messages. */
export const REQUESTED_BY_USER = 'the command line';
/** Bounds the pin-settling rounds; a real graph settles in two or three. */
const MAX_ROUNDS = 20;

export interface PlannedFile {
  /** Path inside the package, as the index lists it. */
  path: string;
  /** Where it goes on the board (under the target folder). */
  boardPath: string;
  /** Short sha256 hash, for files served by the index. */
  hash?: string;
  /** Download URL, for files the package lists by URL (`urls`). */
  url?: string;
}

export interface PlannedPackage {
  name: string;
  /** The version the index gave (or the pin, when the description names none). */
  version: string;
  /** Who asked for it: `the command line` or `name@version` of a dependent package. */
  requiredBy: string[];
  files: PlannedFile[];
}

export interface InstallPlan {
  target: string;
  /** Dependencies before their dependents. */
  packages: PlannedPackage[];
}

export interface ResolveOptions {
  index: PackageIndex;
  /** Board folder the files go to; default `/lib`. */
  target?: string;
}

interface Requirement {
  /** A pinned version or 'latest'. */
  version: string;
  by: string;
}

/** Resolves specs (strings as typed, or parsed) to an install plan; throws before any file download on any problem. */
export async function resolveInstallPlan(specs: readonly (string | PackageSpec)[], options: ResolveOptions): Promise<InstallPlan> {
  const target = normaliseTarget(options.target ?? DEFAULT_TARGET_DIR);
  if (specs.length === 0) throw new PackageSourceNotSupportedError('no package given: name at least one package to install');
  const roots = specs.map((s) => {
    const spec = typeof s === 'string' ? parsePackageSpec(s) : s;
    if (spec.kind !== 'index') throw notYet(spec);
    return { name: spec.name, version: spec.version ?? 'latest' };
  });

  const metas = new Map<string, PackageMeta>();
  const getMeta = async (name: string, version: string, requiredBy: string): Promise<PackageMeta> => {
    const key = `${name}@${version}`;
    const cached = metas.get(key);
    if (cached) return cached;
    try {
      const meta = await options.index.getPackage(name, version);
      metas.set(key, meta);
      return meta;
    } catch (err) {
      if (err instanceof PackageNotFoundError && requiredBy !== REQUESTED_BY_USER) throw new MissingDependencyError(`${err.message}, needed by ${requiredBy}`);
      throw err;
    }
  };

  // Pins settle in rounds: a round walks the graph with the versions chosen so far, then
  // chooses again from what that walk required; when nothing changes the graph is final.
  let chosen = new Map<string, string>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const requirements = new Map<string, Requirement[]>();
    const edges = new Map<string, string[]>();
    const require = (name: string, req: Requirement) => requirements.set(name, [...(requirements.get(name) ?? []), req]);
    for (const root of roots) require(root.name, { version: root.version, by: REQUESTED_BY_USER });
    const queue = roots.map((r) => r.name);
    while (queue.length > 0) {
      const name = queue.shift() as string;
      if (edges.has(name)) continue;
      const version = chosen.get(name) ?? pick(requirements.get(name) ?? []).version;
      const firstBy = requirements.get(name)?.[0]?.by ?? REQUESTED_BY_USER;
      const meta = await getMeta(name, version, firstBy);
      const label = `${name}@${meta.version || version}`;
      const depNames: string[] = [];
      for (const [depSpec, depVersion] of meta.deps) {
        const dep = parseDependency(depSpec, depVersion, label);
        require(dep.name, { version: dep.version, by: label });
        depNames.push(dep.name);
        queue.push(dep.name);
      }
      edges.set(name, depNames);
    }
    const next = new Map([...requirements].map(([name, reqs]) => [name, pick(reqs).version]));
    if (sameChoices(chosen, next)) {
      for (const [name, reqs] of requirements) checkPins(name, reqs);
      checkCycles(
        roots.map((r) => r.name),
        edges,
        chosen,
      );
      return buildPlan(
        roots.map((r) => r.name),
        edges,
        chosen,
        requirements,
        metas,
        target,
      );
    }
    chosen = next;
  }
  throw new PackageConflictError(`the dependencies do not settle on one version each after ${MAX_ROUNDS} rounds: pin the packages explicitly`);
}

/** The version a set of requirements asks for: the first pin, else latest (checkPins reports disagreeing pins). */
function pick(reqs: readonly Requirement[]): Requirement {
  return reqs.find((r) => r.version !== 'latest') ?? reqs[0] ?? { version: 'latest', by: REQUESTED_BY_USER };
}

function checkPins(name: string, reqs: readonly Requirement[]): void {
  const pinned = reqs.filter((r) => r.version !== 'latest');
  const other = pinned.find((r) => r.version !== pinned[0]?.version);
  if (pinned[0] && other) {
    throw new PackageConflictError(
      `version conflict for ${name}: ${pinned[0].by} needs ${name}==${pinned[0].version} but ${other.by} needs ${name}==${other.version}`,
    );
  }
}

function sameChoices(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  return a.size === b.size && [...b].every(([name, version]) => a.get(name) === version);
}

/** A dependency as mip lists it: `[name, version]`, version '' or 'latest' for the latest. */
function parseDependency(depSpec: string, depVersion: string, label: string): { name: string; version: string } {
  let spec: PackageSpec;
  try {
    spec = parsePackageSpec(depSpec);
  } catch (err) {
    throw new PackageIndexError(`${label} lists a dependency the resolver cannot read ("${depSpec}"): ${(err as Error).message}`);
  }
  if (spec.kind !== 'index') throw notYet(spec, label);
  const version = depVersion === '' || depVersion === 'latest' ? (spec.version ?? 'latest') : depVersion;
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version)) throw new PackageIndexError(`${label} pins ${spec.name} to "${version}", which is not a version`);
  return { name: spec.name, version };
}

/** Depth-first over the chosen graph; a back edge is a cycle, named in full. */
function checkCycles(roots: readonly string[], edges: ReadonlyMap<string, string[]>, chosen: ReadonlyMap<string, string>): void {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (name: string) => {
    if (done.has(name)) return;
    const at = path.indexOf(name);
    if (at >= 0) {
      const cycle = [...path.slice(at), name].map((n) => `${n}@${chosen.get(n) ?? 'latest'}`);
      throw new PackageConflictError(`dependency cycle: ${cycle.join(' → ')}`);
    }
    path.push(name);
    for (const dep of edges.get(name) ?? []) visit(dep);
    path.pop();
    done.add(name);
  };
  for (const root of roots) visit(root);
}

function buildPlan(
  roots: readonly string[],
  edges: ReadonlyMap<string, string[]>,
  chosen: ReadonlyMap<string, string>,
  requirements: ReadonlyMap<string, Requirement[]>,
  metas: ReadonlyMap<string, PackageMeta>,
  target: string,
): InstallPlan {
  const order: string[] = [];
  const visit = (name: string) => {
    if (order.includes(name)) return;
    for (const dep of edges.get(name) ?? []) visit(dep);
    order.push(name);
  };
  for (const root of roots) visit(root);
  const owners = new Map<string, string>();
  const packages = order.map((name): PlannedPackage => {
    const requested = chosen.get(name) ?? 'latest';
    const meta = metas.get(`${name}@${requested}`) as PackageMeta;
    const version = meta.version || requested;
    const files: PlannedFile[] = [
      ...meta.hashes.map(([path, hash]) => ({ path, boardPath: `${target}/${path}`, hash })),
      ...meta.urls.map(([path, url]) => ({ path, boardPath: `${target}/${path}`, url: fileUrl(url, `${name}@${version}`) })),
    ];
    for (const file of files) {
      const owner = owners.get(file.boardPath);
      if (owner && owner !== name) throw new PackageConflictError(`${owner} and ${name} both install ${file.boardPath}: they cannot be installed together`);
      owners.set(file.boardPath, name);
    }
    const requiredBy = [...new Set((requirements.get(name) ?? []).map((r) => r.by))];
    return { name, version, requiredBy, files };
  });
  return { target, packages };
}

/** A file URL as mip accepts it in `urls`: http(s), or a github:/gitlab: shorthand of one file. */
function fileUrl(url: string, label: string): string {
  if (/^https?:\/\//i.test(url)) return url;
  if (url.startsWith('github:') || url.startsWith('gitlab:')) {
    const spec = parsePackageSpec(url);
    if (spec.kind === 'url' && spec.file) return spec.url;
  }
  throw new PackageIndexError(`${label} lists a file at "${url}", which is not an http(s) URL or a github:/gitlab: file`);
}

function normaliseTarget(target: string): string {
  const t = target.trim().replace(/\/+$/, '');
  if (!target.startsWith('/') || /[\s\\]/.test(t) || t.split('/').some((s) => s === '..' || s === '.')) {
    throw new PackageSourceNotSupportedError(`install folder "${target}" must be an absolute board path like /lib, without ".." or spaces`);
  }
  return t;
}

function notYet(spec: PackageSpec, neededBy?: string): PackageSourceNotSupportedError {
  const what =
    spec.kind === 'url' ? `a ${spec.via === 'url' ? 'URL' : spec.via + ':'} package` : spec.kind === 'local' ? `a local ${spec.form}` : 'an index package';
  const by = neededBy ? ` (needed by ${neededBy})` : '';
  return new PackageSourceNotSupportedError(
    `${describePackageSpec(spec)}${by} is ${what}: installing from that source is not supported yet, only packages of the index`,
  );
}
