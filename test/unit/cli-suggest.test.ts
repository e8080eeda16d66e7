import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, nearest } from '../../electron/cli/suggest.js';

const VERBS = ['board-execute', 'board-list', 'board-ls', 'board-rm', 'board-rename', 'server-start', 'server-stop', 'usb-ports'];

describe('nearest-word suggestions of the CLI', () => {
  it('counts edits, a swap of two neighbours as one', () => {
    expect(editDistance('timeout', 'timeout')).toBe(0);
    expect(editDistance('timout', 'timeout')).toBe(1);
    expect(editDistance('tiemout', 'timeout')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests a verb for a typo or a unique abbreviation', () => {
    expect(nearest('board-exec', VERBS)).toBe('board-execute');
    expect(nearest('board-lsit', VERBS)).toBe('board-list');
    expect(nearest('sever-start', VERBS)).toBe('server-start');
    expect(nearest('Board-RM', VERBS)).toBe('board-rm');
  });

  it('suggests nothing when no word is close, or a short abbreviation fits several', () => {
    expect(nearest('flash', VERBS)).toBeNull();
    expect(nearest('usb', ['usb-ports', 'usb-put'])).toBeNull();
    expect(nearest('', VERBS)).toBeNull();
    expect(didYouMean('xyz', ['timeout', 'expire'])).toBe('');
    expect(didYouMean('timout', ['timeout', 'expire'], (name) => `--${name}`)).toBe('; did you mean --timeout?');
  });
});
