import { describe, expect, it } from 'vitest';
import {
  checkIndexUrl,
  emptyInstallForm,
  installBar,
  installRequest,
  installResultLine,
  parsePackageList,
  preparingJob,
} from '../../renderer/src/lib/package-install.js';

const target = (patch: Partial<Parameters<typeof installBar>[2] & object> = {}) => ({
  status: 'running' as const,
  message: null,
  done: 0,
  total: 0,
  ...patch,
});

describe('the Install form: package list', () => {
  it('takes one spec per line or comma-separated, drops blanks and repeats', () => {
    expect(parsePackageList('logging\n umqtt.simple@1.3.4 ,github:org/repo\r\n\n,logging,')).toEqual({
      ok: true,
      value: ['logging', 'umqtt.simple@1.3.4', 'github:org/repo'],
    });
    expect(parsePackageList('https://example.com/pkg/package.json, /home/me/mypkg, C:\\pkgs\\x.py, name==1.0')).toEqual({
      ok: true,
      value: ['https://example.com/pkg/package.json', '/home/me/mypkg', 'C:\\pkgs\\x.py', 'name==1.0'],
    });
  });

  it('refuses an empty list, a space inside a spec, too many, too long', () => {
    expect(parsePackageList(' \n , ')).toMatchObject({ ok: false, field: 'packages', error: expect.stringMatching(/at least one package/) });
    const spaced = parsePackageList('logging 0.6');
    expect(spaced).toMatchObject({ ok: false, error: expect.stringContaining('“logging 0.6” has a space in it') });
    expect(spaced.ok === false && spaced.error).toContain('write logging@0.6');
    expect(parsePackageList('aioble umqtt.simple')).toMatchObject({ ok: false, error: expect.stringContaining('own line or separate them with commas') });
    const many = Array.from({ length: 21 }, (_, index) => `p${index}`).join('\n');
    expect(parsePackageList(many)).toMatchObject({ ok: false, error: expect.stringContaining('At most 20 packages at once (you gave 21)') });
    expect(parsePackageList(`x${'y'.repeat(500)}`)).toMatchObject({ ok: false, error: expect.stringContaining('longer than 500 characters') });
  });

  it('refuses a bad URL, a scheme other than http(s), a relative path', () => {
    expect(parsePackageList('ftp://example.com/x.py')).toMatchObject({ ok: false, error: expect.stringContaining('starts with http:// or https://') });
    expect(parsePackageList('http://')).toMatchObject({ ok: false, error: expect.stringContaining('is not a valid URL') });
    expect(parsePackageList('./mypkg')).toMatchObject({ ok: false, error: expect.stringContaining('relative path') });
    expect(parsePackageList('pkgs/x.py')).toMatchObject({ ok: false, error: expect.stringContaining('full path') });
  });
});

describe('the Install form: advanced fields and the request', () => {
  it('an index URL is optional, http(s) only', () => {
    expect(checkIndexUrl('  ')).toEqual({ ok: true, value: undefined });
    expect(checkIndexUrl(' http://127.0.0.1:8080/pi/v2 ')).toEqual({ ok: true, value: 'http://127.0.0.1:8080/pi/v2' });
    for (const bad of ['micropython.org/pi/v2', 'file:///tmp/index', 'https://', `https://x.org/${'a'.repeat(2000)}`])
      expect(checkIndexUrl(bad)).toMatchObject({ ok: false, field: 'index' });
  });

  it('sends only what differs from the defaults', () => {
    const form = { ...emptyInstallForm(), packages: 'logging@0.6\naioble' };
    expect(installRequest(form, 'kitchen')).toEqual({ ok: true, value: { kind: 'install', boards: 'kitchen', packages: ['logging@0.6', 'aioble'] } });
    expect(installRequest({ ...form, target: '', index: 'https://example.com/pi/v2' }, 'kitchen,garage')).toEqual({
      ok: true,
      value: { kind: 'install', boards: 'kitchen,garage', packages: ['logging@0.6', 'aioble'], index: 'https://example.com/pi/v2' },
    });
    expect(installRequest({ ...form, target: ' /flash/lib/ ', source: true }, 'kitchen')).toMatchObject({
      ok: true,
      value: { target: '/flash/lib', source: true },
    });
  });

  it('names the field at fault, packages first', () => {
    expect(installRequest({ ...emptyInstallForm(), index: 'nope' }, 'kitchen')).toMatchObject({ ok: false, field: 'packages' });
    expect(installRequest({ ...emptyInstallForm(), packages: 'x', index: 'nope' }, 'kitchen')).toMatchObject({ ok: false, field: 'index' });
    expect(installRequest({ ...emptyInstallForm(), packages: 'x', target: 'lib' }, 'kitchen')).toMatchObject({
      ok: false,
      field: 'target',
      error: expect.stringContaining('starts with /'),
    });
    expect(installRequest({ ...emptyInstallForm(), packages: 'x', target: '/lib/../x' }, 'kitchen')).toMatchObject({ ok: false, field: 'target' });
    expect(installRequest({ ...emptyInstallForm(), packages: 'x', target: '/' }, 'kitchen')).toMatchObject({
      ok: false,
      field: 'target',
      error: expect.stringContaining('not the root'),
    });
  });
});

describe('install results and progress', () => {
  it('the result line of a board', () => {
    expect(installResultLine('install', { uploadedFiles: 3, skippedFiles: 2, removedFiles: 0, bytes: 12_800 })).toBe('3 uploaded, 2 skipped, 12.5 KB sent');
    expect(installResultLine('install', { uploadedFiles: 0, skippedFiles: 5, removedFiles: 0, bytes: 0 })).toBe('0 uploaded, 5 skipped, 0 B sent');
    expect(installResultLine('install', { uploadedFiles: 1, skippedFiles: 0, removedFiles: 1, bytes: 700 })).toBe(
      '1 uploaded, 0 skipped, 700 B sent, 1 old removed',
    );
    expect(installResultLine('uninstall', { uploadedFiles: 0, skippedFiles: 0, removedFiles: 4, bytes: 0 })).toBe('4 files removed');
    expect(installResultLine('uninstall', { uploadedFiles: 0, skippedFiles: 0, removedFiles: 1, bytes: 0 })).toBe('1 file removed');
  });

  it('the host phase first, then files done of planned, then the result', () => {
    const downloading = { phase: 'download', message: 'Downloading 3 of 5 files', done: 3, total: 5 };
    const boards = { phase: 'boards', message: 'installing on 1 board' };
    expect(installBar('install', null, undefined)).toEqual({
      value: null,
      text: 'Preparing the packages on this computer…',
      tone: 'accent',
      status: 'preparing',
    });
    expect(installBar('install', { phase: 'resolve', message: 'Resolving logging' }, undefined)).toMatchObject({ value: null, text: 'Resolving logging' });
    expect(installBar('install', downloading, undefined)).toMatchObject({ value: 60, text: 'Downloading 3 of 5 files' });
    // While the host prepares, every board shows the host's phase, an offline one too.
    expect(installBar('install', downloading, target({ status: 'queued' }))).toMatchObject({ value: 60, status: 'preparing' });
    expect(installBar('install', downloading, target({ status: 'waiting' }))).toMatchObject({ value: 60, status: 'preparing' });
    // Then the boards' own state.
    expect(installBar('install', boards, target({ status: 'queued' }))).toMatchObject({ value: 0, text: 'Queued', status: 'queued' });
    expect(installBar('install', boards, target({ total: 0 }))).toMatchObject({ value: null, text: 'Reading what is on the board…' });
    expect(installBar('install', boards, target({ done: 1, total: 4 }))).toEqual({ value: 25, text: '1 of 4 files', tone: 'accent', status: 'running' });
    expect(installBar('install', boards, target({ status: 'waiting', total: 4 }))).toMatchObject({
      value: 0,
      status: 'waiting',
      text: expect.stringContaining('come online'),
    });
    const numbers = { uploadedFiles: 3, skippedFiles: 2, removedFiles: 0, bytes: 12_800 };
    expect(installBar('install', boards, target({ status: 'ok', done: 5, total: 5, install: numbers }))).toEqual({
      value: 100,
      text: '3 uploaded, 2 skipped, 12.5 KB sent',
      tone: 'ok',
      status: 'ok',
    });
    // The service's own line wins: it carries its warnings too.
    const warned = '3 uploaded, 2 skipped, 12.5 KB sent; the package record was unreadable and was replaced';
    expect(installBar('install', boards, target({ status: 'ok', message: warned, install: numbers }))).toMatchObject({ text: warned });
    // A preparation that failed fails every board with its message.
    expect(installBar('install', downloading, target({ status: 'failed', message: 'logging 0.6 needs missing-dep, which the index does not have' }))).toEqual({
      value: 100,
      text: 'logging 0.6 needs missing-dep, which the index does not have',
      tone: 'danger',
      status: 'failed',
    });
  });

  it('finds the job a pending start is preparing', () => {
    const list = [
      { id: 'a', kind: 'install', createdAt: 900, state: 'running' },
      { id: 'b', kind: 'install', createdAt: 1_100, state: 'running' },
      { id: 'c', kind: 'upload', createdAt: 1_200, state: 'running' },
      { id: 'd', kind: 'install', createdAt: 1_300, state: 'done' },
    ];
    expect(preparingJob(list, 'install', 1_000)?.id).toBe('b');
    expect(preparingJob(list, 'install', 1_150)).toBeUndefined();
  });
});
