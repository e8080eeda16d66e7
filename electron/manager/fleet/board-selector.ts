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

/**
 * At most this many names, globs and tags after the ranges are expanded. A pattern is
 * counted before any name is built: `x-[0-99999][0-99999]` (ten billion names) once grew
 * the service to 6.5 GB. Larger selections use a tag or a glob, which select among the
 * boards that exist instead of building names.
 */
export const MAX_PATTERN_NAMES = 400;
/** Messages that list boards name at most this many, then "and N more". */
export const MAX_LISTED_NAMES = 10;
/** What a message quotes of a pattern (patterns may be 4 KiB long). */
const QUOTED_PATTERN_CHARS = 60;

/** `"a", "b", "c" and 7 more`: at most `limit` quoted names of a list that may be long. */
export function listNames(names: readonly string[], limit = MAX_LISTED_NAMES): string {
  const shown = names
    .slice(0, limit)
    .map((name) => JSON.stringify(name))
    .join(', ');
  return names.length > limit ? `${shown} and ${(names.length - limit).toLocaleString('en')} more` : shown;
}

function quotePattern(pattern: string): string {
  return JSON.stringify(pattern.length > QUOTED_PATTERN_CHARS ? pattern.slice(0, QUOTED_PATTERN_CHARS) + '…' : pattern);
}

/** Splits at commas that are not inside brackets. */
function splitTopLevel(pattern: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of pattern) {
    if (char === '[') depth++;
    if (char === ']') depth--;
    if (depth < 0) throw new BoardSelectorError(`unbalanced "]" in ${quotePattern(pattern)}`);
    if (char === ',' && depth === 0) {
      items.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  if (depth !== 0) throw new BoardSelectorError(`unbalanced "[" in ${quotePattern(pattern)}`);
  items.push(current);
  return items.map((item) => item.trim()).filter((item) => item !== '');
}

/** One part of a bracket body: `08-11` is from 8 to 11, padded to 2 digits; `07` is from 7 to 7, padded to 2. */
interface RangePart {
  from: number;
  to: number;
  width: number;
}

/** Bounds past this lose precision as numbers (and `n++` stops counting): refused. */
const MAX_RANGE_DIGITS = 15;

/** An item split into literal text and bracket bodies, e.g. `rack[1-2]-[01-02]`. */
type ItemPiece = string | RangePart[];

/** Parses one bracket body such as `08-11` or `1,3,7` or `1-3,9` (nothing is expanded). */
function parseRangeList(body: string, pattern: string): RangePart[] {
  return body.split(',').map((part) => {
    const range = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!range) throw new BoardSelectorError(`bad range "[${body}]" in ${quotePattern(pattern)}: use [1-3] or [1,3,7]`);
    const fromText = range[1]!;
    const toText = range[2] ?? fromText;
    if (fromText.length > MAX_RANGE_DIGITS || toText.length > MAX_RANGE_DIGITS) {
      throw new BoardSelectorError(`range [${part}] in ${quotePattern(pattern)} has a number longer than ${MAX_RANGE_DIGITS} digits`);
    }
    const from = Number(fromText);
    const to = Number(toText);
    if (to < from) throw new BoardSelectorError(`range [${part}] in ${quotePattern(pattern)} goes backwards`);
    return { from, to, width: fromText.length };
  });
}

function parseItem(item: string, pattern: string): ItemPiece[] {
  const pieces: ItemPiece[] = [];
  let rest = item;
  while (rest !== '') {
    const open = rest.indexOf('[');
    if (open === -1) {
      pieces.push(rest);
      break;
    }
    const close = rest.indexOf(']', open);
    pieces.push(rest.slice(0, open), parseRangeList(rest.slice(open + 1, close), pattern));
    rest = rest.slice(close + 1);
  }
  return pieces;
}

/** How many names an item expands to, counted without building them. */
function countNames(pieces: readonly ItemPiece[]): number {
  let count = 1;
  for (const piece of pieces) {
    if (typeof piece !== 'string') count *= piece.reduce((sum, part) => sum + (part.to - part.from + 1), 0);
  }
  return count;
}

/** The names of a counted item: the cartesian product of its brackets, keeping zero padding. */
function expandItem(pieces: readonly ItemPiece[]): string[] {
  let results = [''];
  for (const piece of pieces) {
    if (typeof piece === 'string') {
      results = results.map((prefix) => prefix + piece);
      continue;
    }
    const values: string[] = [];
    for (const { from, to, width } of piece) for (let n = from; n <= to; n++) values.push(String(n).padStart(width, '0'));
    results = results.flatMap((prefix) => values.map((value) => prefix + value));
  }
  return results;
}

/**
 * A shell glob (`*`, `?`) as a matcher that never backtracks further than the last star:
 * at worst (name length × glob length) steps. A regular expression built from the glob
 * backtracks once per star: sixteen `*a` then `*b` against a 32-character name took 27 s.
 */
export function compileGlob(glob: string): (name: string) => boolean {
  const pattern = glob.replace(/\*+/g, '*');
  const fixedChars = pattern.replaceAll('*', '').length;
  return (name) => {
    if (name.length < fixedChars) return false;
    let p = 0;
    let n = 0;
    let star = -1;
    let starMatch = 0;
    while (n < name.length) {
      if (p < pattern.length && (pattern[p] === '?' || pattern[p] === name[n])) {
        p++;
        n++;
      } else if (p < pattern.length && pattern[p] === '*') {
        star = p++;
        starMatch = n;
      } else if (star !== -1) {
        // Let the last star take one more character and try the rest again from there.
        p = star + 1;
        n = ++starMatch;
      } else {
        return false;
      }
    }
    while (pattern[p] === '*') p++;
    return p === pattern.length;
  };
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

/** The known board names: asked one by one for plain names, listed only for a glob (a fleet of 10,000 is not copied per command). */
export interface KnownNames {
  has(name: string): boolean;
  list(): readonly string[];
}

/**
 * Resolves a BOARDS pattern against the known board names; `tagged(tag)` gives the names
 * of the boards carrying a tag (none when not given).
 */
export function selectBoards(pattern: string, knownNames: readonly string[] | KnownNames, tagged: (tag: string) => string[] = () => []): Selection {
  if (typeof pattern !== 'string' || pattern.trim() === '') throw new BoardSelectorError('no boards given');
  const known: KnownNames = Array.isArray(knownNames) ? listedNames(knownNames as readonly string[]) : (knownNames as KnownNames);
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
  const items = splitTopLevel(pattern).map((item) => (item.startsWith(TAG_PREFIX) ? item : parseItem(item, pattern)));
  const count = items.reduce<number>((sum, item) => sum + (typeof item === 'string' ? 1 : countNames(item)), 0);
  if (count > MAX_PATTERN_NAMES) {
    // Several 15-digit ranges multiply past what a number counts exactly.
    const counted = count < 1e15 ? count.toLocaleString('en') : 'more than 10¹⁵';
    throw new BoardSelectorError(
      `${quotePattern(pattern)} names ${counted} boards; at most ${MAX_PATTERN_NAMES} names, globs and tags at once: select more with a tag (tag:NAME) or a glob (sim-*), or narrow the range`,
    );
  }
  for (const item of items) {
    if (typeof item === 'string') {
      const tag = item.slice(TAG_PREFIX.length).trim().toLowerCase();
      if (tag === '') throw new BoardSelectorError(`"${TAG_PREFIX}" needs a tag name, e.g. tag:garden`);
      const matches = [...tagged(tag)].sort(naturalCompare);
      if (matches.length === 0) unmatchedTags.push(tag);
      matches.forEach(add);
      continue;
    }
    for (const expanded of expandItem(item)) {
      if (/[*?]/.test(expanded)) {
        const matchesGlob = compileGlob(expanded);
        const matches = known.list().filter(matchesGlob).sort(naturalCompare);
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

function listedNames(names: readonly string[]): KnownNames {
  const set = new Set(names);
  return { has: (name) => set.has(name), list: () => names };
}

// One collator for all comparisons: localeCompare with options builds one per call,
// which made sorting a 10,000-board fleet take a noticeable part of a second.
const collator = new Intl.Collator('en', { numeric: true });

/** Orders `sim-2` before `sim-10`. */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b);
}
