import { describe, expect, it } from 'vitest';
import { BoardSelectorError, selectBoards } from '../../electron/manager/fleet/board-selector.js';

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
    expect(() => selectBoards('x-[0-999999]', known)).toThrow(/too large: at most 100,000 names per range/);
  });
});
