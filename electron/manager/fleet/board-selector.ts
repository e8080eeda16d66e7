/**
 * BOARDS arguments of the CLI and API, as in the original `mbm`: comma-separated names with
 * host-list ranges (`esp8266-0[08-11],wipy2-[1,3,7]`), shell-style globs (`sim-*`,
 * `kitchen-?`) and tags (`tag:garden`). Ranges keep the zero padding of their bounds.
 * Pure functions.
 */
import { ManagerError, type ErrorKind } from '../errors.js';

export class BoardSelectorError extends ManagerError {
  override name = 'BoardSelectorError';
  readonly kind: ErrorKind = 'bad_request';
}

const MAX_EXPANSION = 100_000;

/** Splits at commas that are not inside brackets. */
function splitTopLevel(pattern: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of pattern) {
    if (char === '[') depth++;
    if (char === ']') depth--;
    if (depth < 0) throw new BoardSelectorError(`unbalanced "]" in ${JSON.stringify(pattern)}`);
    if (char === ',' && depth === 0) {
      items.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  if (depth !== 0) throw new BoardSelectorError(`unbalanced "[" in ${JSON.stringify(pattern)}`);
  items.push(current);
  return items.map((item) => item.trim()).filter((item) => item !== '');
}

/** The values of one bracket body such as `08-11` or `1,3,7` or `1-3,9`. */
function expandRangeList(body: string, pattern: string): string[] {
  const values: string[] = [];
  for (const part of body.split(',')) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!range) throw new BoardSelectorError(`bad range "[${body}]" in ${JSON.stringify(pattern)}: use [1-3] or [1,3,7]`);
    const [, fromText, toText] = range;
    if (toText === undefined) {
      values.push(fromText!);
      continue;
    }
    const from = Number(fromText);
    const to = Number(toText);
    if (to < from) throw new BoardSelectorError(`range [${part}] in ${JSON.stringify(pattern)} goes backwards`);
    if (to - from >= MAX_EXPANSION) {
      throw new BoardSelectorError(`range [${part}] in ${JSON.stringify(pattern)} is too large: at most ${MAX_EXPANSION.toLocaleString('en')} names per range`);
    }
    const width = fromText!.length;
    for (let n = from; n <= to; n++) values.push(String(n).padStart(width, '0'));
  }
  return values;
}

/** Expands the bracket ranges of one item into names (the cartesian product of brackets). */
function expandItem(item: string, pattern: string): string[] {
  let results = [''];
  let rest = item;
  while (rest !== '') {
    const open = rest.indexOf('[');
    if (open === -1) {
      results = results.map((prefix) => prefix + rest);
      break;
    }
    const close = rest.indexOf(']', open);
    const literal = rest.slice(0, open);
    const values = expandRangeList(rest.slice(open + 1, close), pattern);
    const next: string[] = [];
    for (const prefix of results) for (const value of values) next.push(prefix + literal + value);
    if (next.length > MAX_EXPANSION) {
      throw new BoardSelectorError(`${JSON.stringify(pattern)} names too many boards: at most ${MAX_EXPANSION.toLocaleString('en')} at once`);
    }
    results = next;
    rest = rest.slice(close + 1);
  }
  return results;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export interface Selection {
  /** Matched names, in the order the pattern names them, without duplicates. */
  names: string[];
  /** Plain names (no glob) that are not known. */
  unknown: string[];
  /** Globs that matched nothing. */
  unmatchedGlobs: string[];
  /** `tag:NAME` items that no board carries. */
  unmatchedTags: string[];
}

export const TAG_PREFIX = 'tag:';

/**
 * Resolves a BOARDS pattern against the known board names; `tagged(tag)` gives the names
 * of the boards carrying a tag (none when not given).
 */
export function selectBoards(pattern: string, knownNames: readonly string[], tagged: (tag: string) => string[] = () => []): Selection {
  if (typeof pattern !== 'string' || pattern.trim() === '') throw new BoardSelectorError('no boards given');
  const known = new Set(knownNames);
  const names: string[] = [];
  const seen = new Set<string>();
  const unknown: string[] = [];
  const unmatchedGlobs: string[] = [];
  const unmatchedTags: string[] = [];
  const add = (name: string) => {
    if (!seen.has(name)) {
      seen.add(name);
      names.push(name);
    }
  };
  for (const item of splitTopLevel(pattern)) {
    if (item.startsWith(TAG_PREFIX)) {
      const tag = item.slice(TAG_PREFIX.length).trim().toLowerCase();
      if (tag === '') throw new BoardSelectorError(`"${TAG_PREFIX}" needs a tag name, e.g. tag:garden`);
      const matches = [...tagged(tag)].sort(naturalCompare);
      if (matches.length === 0) unmatchedTags.push(tag);
      matches.forEach(add);
      continue;
    }
    for (const expanded of expandItem(item, pattern)) {
      if (/[*?]/.test(expanded)) {
        const regexp = globToRegExp(expanded);
        const matches = knownNames.filter((name) => regexp.test(name)).sort(naturalCompare);
        if (matches.length === 0) unmatchedGlobs.push(expanded);
        matches.forEach(add);
      } else if (known.has(expanded)) {
        add(expanded);
      } else {
        unknown.push(expanded);
      }
    }
  }
  return { names, unknown, unmatchedGlobs, unmatchedTags };
}

// One collator for all comparisons: localeCompare with options builds one per call,
// which made sorting a 10,000-board fleet take a noticeable part of a second.
const collator = new Intl.Collator('en', { numeric: true });

/** Orders `sim-2` before `sim-10`. */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b);
}
