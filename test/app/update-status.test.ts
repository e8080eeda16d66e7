/**
 * The tray's update line in each state of a check, and a failed check's reason in words a
 * user can act on (the updater itself needs the network and an installed app: not tested).
 */
import { describe, expect, it } from 'vitest';
import { updateFailureReason, updateStatusLine, type UpdateState } from '../../electron/app/update-status.js';
import { trayView } from '../../electron/app/tray-model.js';

describe('update status lines', () => {
  it.each<[UpdateState, string | undefined]>([
    [{ kind: 'idle' }, undefined],
    [{ kind: 'checking' }, 'Checking for updates…'],
    [{ kind: 'up-to-date' }, 'Cloudmanager is up to date'],
    [{ kind: 'downloading', version: '0.2.0' }, 'Cloudmanager 0.2.0 is available — downloading'],
    [{ kind: 'downloading', version: '0.2.0', percent: 40 }, 'Cloudmanager 0.2.0 is available — downloading (40%)'],
    [{ kind: 'downloaded', version: '0.2.0' }, 'Cloudmanager 0.2.0 will be installed when you quit'],
    [{ kind: 'failed', reason: 'no published release was found' }, 'Update check failed: no published release was found'],
    [{ kind: 'not-installed' }, 'Updates are checked in the installed app only'],
  ])('%o → %s', (state, line) => {
    expect(updateStatusLine(state)).toBe(line);
  });

  it('the line shows in the tray under "Check for updates"', () => {
    const menu = trayView({
      phase: 'running',
      online: 1,
      total: 1,
      updatesEnabled: true,
      startAtLogin: false,
      updateStatus: updateStatusLine({ kind: 'downloaded', version: '0.2.0' }),
    }).menu;
    const check = menu.findIndex((item) => item.action === 'check-updates');
    expect(menu[check + 1]).toEqual({ kind: 'status', label: 'Cloudmanager 0.2.0 will be installed when you quit', enabled: false });
  });
});

describe('why a check failed', () => {
  const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

  it.each([
    withCode('getaddrinfo ENOTFOUND api.github.com', 'ENOTFOUND'),
    new Error('net::ERR_INTERNET_DISCONNECTED'),
    withCode('connect ECONNREFUSED 140.82.112.6:443', 'ECONNREFUSED'),
    new Error('net::ERR_PROXY_CONNECTION_FAILED'),
  ])('no network (%s) is said plainly', (error) => {
    expect(updateFailureReason(error)).toBe('no connection to the update server (is this computer online?)');
  });

  it('a release feed that is not there (nothing published yet) is said so', () => {
    const error = new Error(
      'Cannot find latest-linux.yml in the latest release artifacts (https://github.com/cloudmanager/cloudmanager-desktop/releases/download/v0.2.0/latest-linux.yml): HttpError: 404\n"method: GET url: …"\nheaders: {…}',
    );
    expect(updateFailureReason(error)).toBe('no published release was found');
  });

  it('anything else: its first line, short', () => {
    const reason = updateFailureReason(new Error(`sha512 checksum mismatch, expected ${'a'.repeat(88)}\n  at verify (DownloadedUpdateHelper.js:1:1)`));
    expect(reason.startsWith('sha512 checksum mismatch, expected aaa')).toBe(true);
    expect(reason.length).toBeLessThanOrEqual(70);
    expect(reason).not.toContain('\n');
    expect(updateFailureReason('plain text')).toBe('plain text');
  });
});
