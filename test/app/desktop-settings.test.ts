/**
 * The desktop app's settings file: defaults when there is none, what a change saves (and
 * refuses), a damaged file kept aside rather than lost, and a file only its user can read.
 */
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_DESKTOP_SETTINGS,
  DesktopSettingsError,
  desktopSettingsFile,
  readDesktopSettings,
  writeDesktopSettings,
  type DesktopSettings,
} from '../../electron/app/desktop-settings.js';

describe('desktop settings', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cm-desktop-settings-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('with no file: the defaults (nothing on, embedded Redis), and no file is written by reading', async () => {
    expect(await readDesktopSettings(dataDir)).toEqual({ startAtLogin: false, updatesEnabled: false, closeToTrayNoticeShown: false, redisUrl: null });
    expect(await readdir(dataDir)).toEqual([]);
  });

  it('a change is saved in desktop.json (0600), merged with what was there, and read back', async () => {
    expect(await writeDesktopSettings(dataDir, { updatesEnabled: true })).toMatchObject({ updatesEnabled: true, startAtLogin: false });
    const saved = await writeDesktopSettings(dataDir, { startAtLogin: true, redisUrl: 'rediss://cm:secret@redis.example:6380' });
    const expected: DesktopSettings = {
      startAtLogin: true,
      updatesEnabled: true,
      closeToTrayNoticeShown: false,
      redisUrl: 'rediss://cm:secret@redis.example:6380',
    };
    expect(saved).toEqual(expected);
    expect(await readDesktopSettings(dataDir)).toEqual(expected);
    const file = desktopSettingsFile(dataDir);
    expect(path.basename(file)).toBe('desktop.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(expected);
    // Atomic writes leave no temp files behind.
    expect(await readdir(dataDir)).toEqual(['desktop.json']);
  });

  it('two quick changes one after the other both stick', async () => {
    await Promise.all([writeDesktopSettings(dataDir, { startAtLogin: true }), writeDesktopSettings(dataDir, { updatesEnabled: true })]);
    expect(await readDesktopSettings(dataDir)).toMatchObject({ startAtLogin: true, updatesEnabled: true });
  });

  it('a file from an older version (fewer fields) keeps its values; unknown fields are dropped', async () => {
    await writeFile(desktopSettingsFile(dataDir), JSON.stringify({ startAtLogin: true, somethingOld: 1 }));
    expect(await readDesktopSettings(dataDir)).toEqual({ ...DEFAULT_DESKTOP_SETTINGS, startAtLogin: true });
  });

  it.each([
    ['not JSON', '{"startAtLogin": tru'],
    ['JSON of the wrong shape', '[1, 2, 3]'],
    ['a field of the wrong type', '{"startAtLogin": "yes"}'],
    ['a Redis URL that is not one', '{"redisUrl": "http://example.com"}'],
  ])('a damaged file (%s) is moved to desktop.json.bad, untouched, and the defaults are used', async (_what, content) => {
    const file = desktopSettingsFile(dataDir);
    await writeFile(file, content);
    expect(await readDesktopSettings(dataDir)).toEqual(DEFAULT_DESKTOP_SETTINGS);
    expect(await readFile(`${file}.bad`, 'utf8')).toBe(content);
    expect(await readdir(dataDir)).toEqual(['desktop.json.bad']);
    // The next change starts from the defaults and leaves the kept copy alone.
    await writeDesktopSettings(dataDir, { updatesEnabled: true });
    expect(await readDesktopSettings(dataDir)).toEqual({ ...DEFAULT_DESKTOP_SETTINGS, updatesEnabled: true });
    expect(await readFile(`${file}.bad`, 'utf8')).toBe(content);
  });

  it('a damaged file read twice at once is moved aside once, and both reads give the defaults', async () => {
    await writeFile(desktopSettingsFile(dataDir), '{');
    expect(await Promise.all([readDesktopSettings(dataDir), readDesktopSettings(dataDir)])).toEqual([DEFAULT_DESKTOP_SETTINGS, DEFAULT_DESKTOP_SETTINGS]);
    expect(await readdir(dataDir)).toEqual(['desktop.json.bad']);
  });

  it.each(['redis+cluster://cm:secret@10.0.0.1:7000,10.0.0.2:7000', 'redis+sentinel://s1:26379,s2:26379/mymaster'])(
    'a Redis Cluster or Sentinel URL like %s is kept (the service checks the rest)',
    async (redisUrl) => {
      expect(await writeDesktopSettings(dataDir, { redisUrl })).toMatchObject({ redisUrl });
    },
  );

  it.each(['http://redis.example:6379', 'redis.example:6379', 'redis://', 'redis+cluster://'])(
    'a Redis URL like %s is refused with a message that says what is expected',
    async (redisUrl) => {
      const error = await writeDesktopSettings(dataDir, { redisUrl }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(DesktopSettingsError);
      expect((error as Error).message).toMatch(/redisUrl.*redis:\/\/ or rediss:\/\//);
      expect(await readdir(dataDir)).toEqual([]);
    },
  );

  it('a password in a refused URL does not appear in the message', async () => {
    const error = await writeDesktopSettings(dataDir, { redisUrl: 'http://cm:hunter2@redis.example' }).catch((caught: unknown) => caught);
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('unknown fields and wrong types are refused; nothing is written', async () => {
    await expect(writeDesktopSettings(dataDir, { startAtLogin: 'yes' } as never)).rejects.toThrow(/startAtLogin/);
    await expect(writeDesktopSettings(dataDir, { autoUpdate: true } as never)).rejects.toThrow(/autoUpdate/);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it('redisUrl null goes back to the embedded Redis', async () => {
    await writeDesktopSettings(dataDir, { redisUrl: 'redis://127.0.0.1:6379' });
    expect((await writeDesktopSettings(dataDir, { redisUrl: null })).redisUrl).toBeNull();
  });
});
