import { describe, expect, it } from 'vitest';
import { SpeedMeter, catalogueName, checkNewBoardName, failedPart, flashSteps, stepOfPhase, suggestBoardName } from '../../renderer/src/lib/flash-steps.js';

describe('flash wizard steps', () => {
  it('lists the steps a job goes through', () => {
    expect(flashSteps({ download: true, erase: false, provision: true, flash: true }).map((step) => step.id)).toEqual([
      'download',
      'connect',
      'write',
      'verify',
      'start',
      'setup',
      'online',
    ]);
    expect(flashSteps({ download: false, erase: true, provision: false, flash: true }).map((step) => step.id)).toEqual([
      'connect',
      'erase',
      'write',
      'verify',
      'start',
    ]);
    expect(flashSteps({ download: false, erase: false, provision: true, flash: false }).map((step) => step.id)).toEqual(['setup', 'online']);
  });

  it('names the erase step after what it does: the whole flash when asked, only old data found by the flasher', () => {
    expect(flashSteps({ download: false, erase: true, clearOldData: true, provision: false, flash: true })[1]).toEqual({
      id: 'erase',
      label: 'Erase the flash',
    });
    expect(flashSteps({ download: false, erase: false, clearOldData: true, provision: false, flash: true })[1]).toEqual({
      id: 'erase',
      label: "Clear the old firmware's data",
    });
  });

  it('maps reported phases to steps, and tells which part failed', () => {
    expect(
      ['download.data', 'flash.bootloader', 'flash.detect', 'flash.write', 'flash.reflash', 'provision.enroll', 'provision.online', 'other.x'].map(stepOfPhase),
    ).toEqual(['download', 'connect', 'connect', 'write', 'start', 'setup', 'online', null]);
    expect([failedPart('provision.failed'), failedPart('download.failed'), failedPart('flash.failed'), failedPart(undefined)]).toEqual([
      'provision',
      'download',
      'flash',
      'flash',
    ]);
  });

  it('measures the write speed over the last seconds', () => {
    const meter = new SpeedMeter();
    expect(meter.add(0, 0)).toBeNull();
    expect(meter.add(1_000, 40_000)).toBe(40_000);
    expect(meter.add(5_000, 200_000)).toBe(40_000);
  });

  it('suggests and checks board names', () => {
    expect(suggestBoardName(['esp8266-1', 'esp8266-2', 'other'])).toBe('esp8266-3');
    expect(checkNewBoardName('', []).error).toMatch(/name/);
    expect(checkNewBoardName('bad name', []).error).toMatch(/letters/);
    expect(checkNewBoardName('kitchen', ['kitchen'])).toMatchObject({ error: null, warning: expect.stringMatching(/new credentials/) });
    expect(checkNewBoardName('kitchen', [])).toEqual({ error: null, warning: null });
  });

  it('makes catalogue names from file names', () => {
    expect(catalogueName('ESP8266_GENERIC-20251209-v1.27.0.bin')).toBe('ESP8266_GENERIC-20251209-v1.27.0.bin');
    expect(catalogueName('my firmware (2).BIN')).toBe('my-firmware-2-.bin');
    expect(catalogueName('...')).toBe('firmware.bin');
  });
});
