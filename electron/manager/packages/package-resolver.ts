/**
 * Resolves what a user asked to install into an install plan, on the host and before any
 * board is touched: every package is described by its source (the index, a package.json by
 * URL or github:/gitlab:, a local folder/.py/.tar.gz, a PyPI sdist: package-sources.ts), its
 * dependencies followed recursively, pins and version specifiers honoured, and the whole graph
 * checked (a cycle, two incompatible requirements of one package, or two packages owning one
 * file stop it, naming who asked for what). The plan lists the packages in install order
 * (dependencies first) with each file's board path and where its bytes come from (an index
 * hash, a URL, or bytes already read); package-prepare.ts downloads and checks them.
 */
import path from 'node:path';
import { ManagerError, type ErrorKind } from '../errors.js';
import { compareVersions, installTarget, isPackageMetadata, parseSpecifier, satisfies } from './package-files.js';
import { PackageIndexError, PackageNotFoundError, type PackageIndex } from './package-index.js';
import { describePackageSpec, parsePackageSpec, type PackageSpec } from './package-spec.js';

/** The packages asked for cannot be installed together (conflicting pins, a cycle, two packages owning one file). */
export class PackageConflictError extends ManagerError {
  override name = 'PackageConflictError';
  readonly kind: ErrorKind = 'bad_request';
}

/** A source the resolver was not given a way to read (an index-only resolver and a URL, say). */
export class PackageSourceNotSupportedError extends ManagerError {
  override name = 'PackageSourceNotSupportedError';
  readonly kind: ErrorKind = 'bad_request';
}

/** A dependency named by a package is missing from the index. */
export class MissingDependencyError extends PackageIndexError {
  override name = 'MissingDependencyError';
}

/** What a requirement typed on the command line is "required by" in messages. */
export const REQUESTED_BY_USER = 'the command line';
/** Bounds the pin-settling rounds; a real graph settles in two or three. */
const MAX_ROUNDS = 20;

/** A file of a described package: where it goes (relative to the target) and where its bytes come from. */
export interface DescribedFile {
  path: string;
  /** Short (index) or full sha256, for files served by the index. */
  hash?: string;
  /** Download URL, for files a package lists by URL (`urls`). */
  url?: string;
  /** Bytes already read (a local file, an unpacked sdist). */
  data?: Buffer;
}

/** What a source says about one package at one version. */
export interface PackageDescription {
  name: string;
  version: string;
  /** Where it came from, for the board's record (`index https://…`, `github:org/repo@ref`, `pypi micropython-x 1.0`, `local /abs/path`). */
  source: string;
  files: DescribedFile[];
  /** mip's `[name or URL, version]` pairs; the version may be '', 'latest', a pin, a PEP 440 specifier or (github:) a ref. */
  deps: Array<[string, string]>;
}

/** What the resolver asks a source for. */
export interface PackageRequest {
  spec: PackageSpec;
  /** An exact version (pin), if any requirement pins one. */
  exact?: string;
  /** PEP 440 specifiers the version must meet (from PyPI dependencies), each normalised. */
  specifiers: string[];
  /** Who asked first, for messages. */
  requiredBy: string;
}

export type PackageLookup = (request: PackageRequest) => Promise<PackageDescription>;

export interface PlannedFile extends DescribedFile {
  /** Where it goes on the board (under the target folder). */
  boardPath: string;
}

export interface PlannedPackage {
  name: string;
  /** The version the source gave (or the pin, when the description names none). */
  version: string;
  source: string;
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
  /** Describes packages of every kind; without it only index packages of `index` can be resolved. */
  lookup?: PackageLookup;
  index?: PackageIndex;
  /** Board folder the files go to; default `/lib`. */
  target?: string;
}

interface Requirement {
  /** 'latest', an exact version, or a PEP 440 specifier (starts with an operator). */
  version: string;
  by: string;
}

interface Node {
  spec: PackageSpec;
  reqs: Requirement[];
}

/** Resolves specs (strings as typed, or parsed) to an install plan; throws before any file download on any problem. */
export async function resolveInstallPlan(specs: readonly (string | PackageSpec)[], options: ResolveOptions): Promise<InstallPlan> {
  const target = installTarget(options.target);
  if (specs.length === 0) throw new PackageSourceNotSupportedError('no package given: name at least one package to install');
  const lookup = options.lookup ?? (options.index ? indexOnlyLookup(options.index) : undefined);
  if (!lookup) throw new PackageSourceNotSupportedError('no package source given to the resolver');
  const roots = specs.map((s) => {
    const spec = typeof s === 'string' ? parsePackageSpec(s) : s;
    return { key: keyOf(spec), spec, version: spec.kind === 'index' ? (spec.version ?? 'latest') : 'latest' };
  });

  const described = new Map<string, PackageDescription>();
  const describe = async (key: string, node: Node, choice: Choice, requiredBy: string): Promise<PackageDescription> => {
    const cacheKey = `${key}#${choiceId(choice)}`;
    const cached = described.get(cacheKey);
    if (cached) return cached;
    try {
      const description = await lookup({ spec: node.spec, ...choice, requiredBy });
      described.set(cacheKey, description);
      return description;
    } catch (err) {
      if (err instanceof PackageNotFoundError && requiredBy !== REQUESTED_BY_USER) throw new MissingDependencyError(`${err.message}, needed by ${requiredBy}`);
      throw err;
    }
  };

  // Pins settle in rounds: a round walks the graph with the versions chosen so far, then
  // chooses again from what that walk required; when nothing changes the graph is final.
  let chosen = new Map<string, Choice>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const nodes = new Map<string, Node>();
    const edges = new Map<string, string[]>();
    const results = new Map<string, PackageDescription>();
    const require = (key: string, spec: PackageSpec, req: Requirement) => {
      const node = nodes.get(key) ?? { spec, reqs: [] };
      node.reqs.push(req);
      nodes.set(key, node);
    };
    for (const root of roots) require(root.key, root.spec, { version: root.version, by: REQUESTED_BY_USER });
    const queue = roots.map((r) => r.key);
    while (queue.length > 0) {
      const key = queue.shift() as string;
      if (edges.has(key)) continue;
      const node = nodes.get(key) as Node;
      const choice = chosen.get(key) ?? pick(node.reqs);
      const description = await describe(key, node, choice, node.reqs[0]?.by ?? REQUESTED_BY_USER);
      results.set(key, description);
      const label = `${description.name}@${description.version}`;
      const depKeys: string[] = [];
      for (const [depSpec, depVersion] of description.deps) {
        const dep = parseDependency(depSpec, depVersion, label);
        require(dep.key, dep.spec, { version: dep.version, by: label });
        depKeys.push(dep.key);
        queue.push(dep.key);
      }
      edges.set(key, depKeys);
    }
    const next = new Map([...nodes].map(([key, node]) => [key, pick(node.reqs)]));
    if (sameChoices(chosen, next)) {
      for (const [key, node] of nodes) checkRequirements(key, node.reqs, results.get(key) as PackageDescription);
      checkCycles(
        roots.map((r) => r.key),
        edges,
        results,
      );
      return buildPlan(
        roots.map((r) => r.key),
        edges,
        nodes,
        results,
        target,
      );
    }
    chosen = next;
  }
  throw new PackageConflictError(`the dependencies do not settle on one version each after ${MAX_ROUNDS} rounds: pin the packages explicitly`);
}

/** A graph node's identity: index packages by name (so pins meet), others by where they are. */
function keyOf(spec: PackageSpec): string {
  if (spec.kind === 'index') return spec.name;
  return spec.kind === 'url' ? `url ${spec.url}` : `local ${spec.path}`;
}

type Choice = { exact?: string; specifiers: string[] };

const isSpecifier = (version: string) => /^[=<>!~]/.test(version) || version.includes(',');

/** What a set of requirements asks for: the first exact pin (checkRequirements reports disagreeing ones) and every specifier. */
function pick(reqs: readonly Requirement[]): Choice {
  const exact = reqs.find((r) => r.version !== 'latest' && !isSpecifier(r.version))?.version;
  const specifiers = [...new Set(reqs.filter((r) => isSpecifier(r.version)).map((r) => r.version))].sort();
  return exact === undefined ? { specifiers } : { exact, specifiers };
}

function choiceId(choice: Choice): string {
  return `${choice.exact ?? 'latest'}${choice.specifiers.length ? ` ${choice.specifiers.join(',')}` : ''}`;
}

function sameChoices(a: ReadonlyMap<string, Choice>, b: ReadonlyMap<string, Choice>): boolean {
  return a.size === b.size && [...b].every(([key, choice]) => a.has(key) && choiceId(a.get(key) as Choice) === choiceId(choice));
}

/** Two different pins, or a version that misses someone's specifier, is a conflict naming both sides. */
function checkRequirements(key: string, reqs: readonly Requirement[], description: PackageDescription): void {
  const name = description.name;
  const pinned = reqs.filter((r) => r.version !== 'latest' && !isSpecifier(r.version));
  const other = pinned.find((r) => r.version !== pinned[0]?.version);
  if (pinned[0] && other) {
    throw new PackageConflictError(
      `version conflict for ${name}: ${pinned[0].by} needs ${name}==${pinned[0].version} but ${other.by} needs ${name}==${other.version}`,
    );
  }
  if (!key.startsWith('url ') && !key.startsWith('local ')) {
    for (const req of reqs.filter((r) => isSpecifier(r.version))) {
      if (safeSatisfies(description.version, req.version)) continue;
      const chosenBy = pinned[0] ? `${pinned[0].by} needs ${name}==${pinned[0].version}` : `the newest ${name} available is ${description.version}`;
      throw new PackageConflictError(`version conflict for ${name}: ${req.by} needs ${name}${req.version} but ${chosenBy}`);
    }
  }
}

/** A version a source gave that is not PEP 440 (a branch name, say) meets no specifier. */
function safeSatisfies(version: string, specifier: string): boolean {
  try {
    return satisfies(version, specifier);
  } catch {
    return false;
  }
}

/** A dependency as mip lists it: `[name or URL, version]`; for github:/gitlab: the version is the ref (mip passes it as the branch). */
function parseDependency(depSpec: string, depVersion: string, label: string): { key: string; spec: PackageSpec; version: string } {
  let spec: PackageSpec;
  const ref = depVersion !== '' && depVersion !== 'latest' && !isSpecifier(depVersion) ? depVersion : undefined;
  const repoRef = (depSpec.startsWith('github:') || depSpec.startsWith('gitlab:')) && ref && !depSpec.includes('@');
  try {
    spec = parsePackageSpec(repoRef ? `${depSpec}@${ref}` : depSpec);
  } catch (err) {
    throw new PackageIndexError(`${label} lists a dependency the resolver cannot read ("${depSpec}"): ${(err as Error).message}`);
  }
  if (spec.kind === 'local') throw new PackageIndexError(`${label} lists a dependency on a local path ("${depSpec}"), which a published package cannot have`);
  if (spec.kind !== 'index') return { key: keyOf(spec), spec, version: 'latest' };
  const version = depVersion === '' || depVersion === 'latest' ? (spec.version ?? 'latest') : depVersion;
  if (isSpecifier(version)) {
    try {
      const clauses = parseSpecifier(version);
      // `==1.0` alone is a pin: it must meet other pins exactly, as the index serves pinned versions.
      const only = clauses.length === 1 ? /^==([^*]+)$/.exec(clauses[0] as string)?.[1] : undefined;
      return { key: spec.name, spec, version: only ?? clauses.join(',') };
    } catch (err) {
      throw new PackageIndexError(`${label} requires ${spec.name}${version}: ${(err as Error).message}`);
    }
  }
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(version)) throw new PackageIndexError(`${label} pins ${spec.name} to "${version}", which is not a version`);
  return { key: spec.name, spec, version };
}

/** Depth-first over the chosen graph; a back edge is a cycle, named in full. */
function checkCycles(roots: readonly string[], edges: ReadonlyMap<string, string[]>, results: ReadonlyMap<string, PackageDescription>): void {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (key: string) => {
    if (done.has(key)) return;
    const at = path.indexOf(key);
    if (at >= 0) {
      const cycle = [...path.slice(at), key].map((k) => `${results.get(k)?.name ?? k}@${results.get(k)?.version ?? '?'}`);
      throw new PackageConflictError(`dependency cycle: ${cycle.join(' → ')}`);
    }
    path.push(key);
    for (const dep of edges.get(key) ?? []) visit(dep);
    path.pop();
    done.add(key);
  };
  for (const root of roots) visit(root);
}

function buildPlan(
  roots: readonly string[],
  edges: ReadonlyMap<string, string[]>,
  nodes: ReadonlyMap<string, Node>,
  results: ReadonlyMap<string, PackageDescription>,
  target: string,
): InstallPlan {
  const order: string[] = [];
  const visit = (key: string) => {
    if (order.includes(key)) return;
    for (const dep of edges.get(key) ?? []) visit(dep);
    order.push(key);
  };
  for (const root of roots) visit(root);
  const owners = new Map<string, string>();
  const names = new Map<string, string>();
  const packages = order.map((key): PlannedPackage => {
    const { name, version, source, files: described } = results.get(key) as PackageDescription;
    const sameName = names.get(name);
    if (sameName !== undefined) throw new PackageConflictError(`two packages are named ${name} (${sameName} and ${source}): install one of them`);
    names.set(name, source);
    // Whatever a package lists, its README, licence or setup files stay on the host.
    const files = described.filter((file) => !isPackageMetadata(file.path)).map((file) => ({ ...file, boardPath: path.posix.join(target, file.path) }));
    for (const file of files) {
      const owner = owners.get(file.boardPath);
      if (owner && owner !== name) throw new PackageConflictError(`${owner} and ${name} both install ${file.boardPath}: they cannot be installed together`);
      owners.set(file.boardPath, name);
    }
    const requiredBy = [...new Set((nodes.get(key)?.reqs ?? []).map((r) => r.by))];
    return { name, version, source, requiredBy, files };
  });
  return { target, packages };
}

/** A lookup that knows only the index: the resolver's behaviour before other sources existed (and a test seam). */
export function indexOnlyLookup(index: PackageIndex): PackageLookup {
  return async ({ spec, exact, specifiers, requiredBy }) => {
    if (spec.kind !== 'index') throw notSupported(spec, requiredBy);
    return describeIndexPackage(index, spec.name, exact, specifiers);
  };
}

/** An index package: the pinned version, else the latest (checked against specifiers by the resolver). */
export async function describeIndexPackage(index: PackageIndex, name: string, exact: string | undefined, _specifiers: string[]): Promise<PackageDescription> {
  const requested = exact ?? 'latest';
  const meta = await index.getPackage(name, requested);
  const version = meta.version || requested;
  const label = `${name}@${version}`;
  return {
    name,
    version,
    source: `index ${index.indexUrl}`,
    files: [...meta.hashes.map(([path, hash]) => ({ path, hash })), ...meta.urls.map(([path, url]) => ({ path, url: fileUrl(url, label) }))],
    deps: meta.deps,
  };
}

/** A file URL as mip accepts it in an index package's `urls`: http(s), or a github:/gitlab: shorthand of one file. */
function fileUrl(url: string, label: string): string {
  if (/^https?:\/\//i.test(url)) return url;
  if (url.startsWith('github:') || url.startsWith('gitlab:')) {
    const spec = parsePackageSpec(url);
    if (spec.kind === 'url' && spec.file) return spec.url;
  }
  throw new PackageIndexError(`${label} lists a file at "${url}", which is not an http(s) URL or a github:/gitlab: file`);
}

/** Newest first, so messages can list what a source has. */
export function newestFirst(versions: string[]): string[] {
  return [...versions].sort((a, b) => {
    try {
      return compareVersions(b, a);
    } catch {
      return 0;
    }
  });
}

function notSupported(spec: PackageSpec, requiredBy: string): PackageSourceNotSupportedError {
  const what =
    spec.kind === 'url' ? `a ${spec.via === 'url' ? 'URL' : spec.via + ':'} package` : spec.kind === 'local' ? `a local ${spec.form}` : 'an index package';
  const by = requiredBy !== REQUESTED_BY_USER ? ` (needed by ${requiredBy})` : '';
  return new PackageSourceNotSupportedError(
    `${describePackageSpec(spec)}${by} is ${what}: installing from that source is not supported yet, only packages of the index`,
  );
}
