import { describe, expect, it } from 'vitest';
import { BoardSelectorError, compileGlob, listNames, MAX_PATTERN_NAMES, selectBoards } from '../../electron/manager/fleet/board-selector.js';

const known = ['esp8266-007', 'esp8266-008', 'esp8266-009', 'esp8266-010', 'esp8266-011', 'wipy2-1', 'wipy2-3', 'wipy2-7', 'sim-1', 'sim-2', 'sim-10'];

describe('BOARDS selection', () => {
  it('expands zero-padded ranges and lists like the original mbm', () => {
    expect(selectBoards('esp8266-0[08-11],wipy2-[1,3,7]', known).names).toEqual([
      'esp8266-008',
      'esp8266-009',
      'esp8266-010',
      'esp8266-011',
      'wipy2-1',
      'wipy2-3',
      'wipy2-7',
    ]);
  });

  it('matches globs in natural order and removes duplicates', () => {
    expect(selectBoards('sim-*,sim-1', known).names).toEqual(['sim-1', 'sim-2', 'sim-10']);
    expect(selectBoards('sim-?', known).names).toEqual(['sim-1', 'sim-2']);
  });

  it('reports unknown names and globs that match nothing', () => {
    const selection = selectBoards('sim-1,nope,x-*', known);
    expect(selection.names).toEqual(['sim-1']);
    expect(selection.unknown).toEqual(['nope']);
    expect(selection.unmatchedGlobs).toEqual(['x-*']);
  });

  it('combines several brackets (cartesian product)', () => {
    expect(selectBoards('rack[1-2]-[01-02]', []).unknown).toEqual(['rack1-01', 'rack1-02', 'rack2-01', 'rack2-02']);
  });

  it('selects boards by tag (tag:NAME), mixed with names and globs', () => {
    const tags: Record<string, string[]> = { garden: ['sim-10', 'wipy2-1'], empty: [] };
    const tagged = (tag: string) => tags[tag] ?? [];
    expect(selectBoards('tag:garden', known, tagged).names).toEqual(['sim-10', 'wipy2-1']);
    expect(selectBoards('sim-1,tag:Garden', known, tagged).names).toEqual(['sim-1', 'sim-10', 'wipy2-1']);
    expect(selectBoards('tag:empty,tag:nope', known, tagged).unmatchedTags).toEqual(['empty', 'nope']);
    expect(() => selectBoards('tag:', known, tagged)).toThrow(/needs a tag name/);
  });

  it('refuses malformed patterns with a clear error', () => {
    expect(() => selectBoards('esp-[1-3', known)).toThrow(BoardSelectorError);
    expect(() => selectBoards('esp-1-3]', known)).toThrow(/unbalanced/);
    expect(() => selectBoards('esp-[5-1]', known)).toThrow(/backwards/);
    expect(() => selectBoards('', known)).toThrow(/no boards/);
    expect(() => selectBoards('x-[0-999999]', known)).toThrow(/names 1,000,000 boards; at most 400 /);
  });
});

describe('BOARDS patterns that would take the service down (issue 11)', () => {
  it('counts what ranges expand to before building anything, and refuses more than 400 with what to do instead', () => {
    // Ten billion names: this grew the service to 6.5 GB and killed it.
    expect(() => selectBoards('x-[0-99999][0-99999]', known)).toThrow(
      /"x-\[0-99999\]\[0-99999\]" names 10,000,000,000 boards; at most 400 names.*tag:NAME.*narrow the range/,
    );
    // Ten million: this blocked the service for 2.3 s before being refused.
    expect(() => selectBoards('x-[0-99999][0-99]', known)).toThrow(/names 10,000,000 boards; at most 400 /);
    expect(MAX_PATTERN_NAMES).toBe(400);
    expect(selectBoards('x-[1-400]', known).unknown).toHaveLength(400);
    expect(() => selectBoards('x-[1-401]', known)).toThrow(/names 401 boards/);
    // The limit is on the whole pattern: items add up, globs and tags count one each.
    expect(() => selectBoards('x-[1-200],y-[1-199],sim-*,tag:garden', known)).toThrow(/names 401 boards/);
    expect(() => selectBoards(Array.from({ length: 401 }, () => 'sim-*').join(','), known)).toThrow(/names 401 boards/);
  });

  it('refuses range bounds too long to count exactly (they used to loop forever)', () => {
    expect(() => selectBoards('x-[100000000000000000000-100000000000000000005]', known)).toThrow(/longer than 15 digits/);
    expect(() => selectBoards('x-[1-999999999999999][1-999999999999999]', known)).toThrow(/names more than 10¹⁵ boards/);
  });

  it('keeps the zero padding of single values and bounds', () => {
    expect(selectBoards('e-[07,010-011]', []).unknown).toEqual(['e-07', 'e-010', 'e-011']);
  });

  it('quotes at most the start of a long pattern in its messages', () => {
    const error = (() => {
      try {
        selectBoards(`${'a'.repeat(4000)}-[1-999]`, known);
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(error?.message).toMatch(/^"a{60}…" names 999 boards/);
    expect(error!.message.length).toBeLessThan(300);
  });

  it('matches a glob of sixteen "*a" then "*b" against a 32-character name at once (a regular expression took 27 s)', () => {
    const glob = '*a'.repeat(16) + '*b';
    const started = performance.now();
    expect(selectBoards(glob, ['a'.repeat(32)]).unmatchedGlobs).toEqual([glob]);
    expect(selectBoards(glob, ['a'.repeat(31) + 'b']).names).toEqual(['a'.repeat(31) + 'b']);
    console.log(`bench: ${glob} against 32-character names: ${(performance.now() - started).toFixed(1)} ms`);
  });

  it('matches globs as the shell does', () => {
    const cases: Array<[string, string, boolean]> = [
      ['sim-*', 'sim-1', true],
      ['sim-*', 'sim-', true],
      ['sim-*', 'sims-1', false],
      ['*', '', true],
      ['?', '', false],
      ['s?m-?', 'sim-1', true],
      ['s?m-?', 'sim-10', false],
      ['*-1', 'sim-1', true],
      ['*-1', 'sim-10', false],
      ['*a*b*c', 'xaybzc', true],
      ['*a*b*c', 'xaybzcq', false],
      ['a**b', 'ab', true],
      ['*ab*ab', 'abab', true],
      ['*ab*ab', 'aabab', true],
      ['*ab*ab', 'abba', false],
      ['k.t*', 'kxt-1', false],
      ['k.t*', 'k.t-1', true],
    ];
    for (const [glob, name, expected] of cases) expect([glob, name, compileGlob(glob)(name)]).toEqual([glob, name, expected]);
  });

  it('lists at most 10 names in a message, then says how many more', () => {
    const names = Array.from({ length: 50 }, (_, index) => `nope-${index + 1}`);
    expect(listNames(names)).toBe('"nope-1", "nope-2", "nope-3", "nope-4", "nope-5", "nope-6", "nope-7", "nope-8", "nope-9", "nope-10" and 40 more');
    expect(listNames(names.slice(0, 10))).not.toContain('more');
    expect(listNames(['a'])).toBe('"a"');
  });
});
