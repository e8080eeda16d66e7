import { describe, expect, it } from 'vitest';
import { formatClock, plainText, standbyBanner, usbElsewhere } from '../../renderer/src/lib/manager-role.js';
import type { ManagerRoleStatus } from '../../electron/manager/api/contract.js';

// Local times, so the expectations hold in any time zone.
const now = new Date(2026, 11, 2, 15, 30).getTime();
const since = new Date(2026, 11, 2, 9, 5).getTime();
const standby = (active: ManagerRoleStatus['active']): ManagerRoleStatus => ({ role: 'standby', id: 'b', host: 'laptop', active });
const activeRole: ManagerRoleStatus = { role: 'active', id: 'a', host: 'garden-pi', epoch: 3, active: null };
const pi = { id: 'a', host: 'garden-pi', pid: 4242, apiUrl: 'http://127.0.0.1:18267', since };

describe('formatClock', () => {
  it('shows the time for today and adds the day for another day', () => {
    expect(formatClock(since, now)).toBe('09:05');
    expect(formatClock(new Date(2026, 10, 30, 23, 59).getTime(), now)).toBe('30 Nov 23:59');
  });
});

describe('the standby banner', () => {
  it('names the computer that runs the fleet (set apart), since when, and what works where', () => {
    const parts = standbyBanner(standby(pi), now)!;
    expect(plainText(parts)).toBe(
      'This computer stands by: garden-pi runs the fleet (since 09:05). ' +
        'Boards, code, files and jobs work from here; flashing boards over USB works on garden-pi.',
    );
    expect(parts.filter((part) => part.name).map((part) => part.text)).toEqual(['garden-pi', 'garden-pi']);
  });
  it('says a computer takes over soon when none runs the fleet', () => {
    expect(plainText(standbyBanner(standby(null), now)!)).toBe(
      'This computer stands by and no computer runs the fleet right now; this one takes over within a few seconds.',
    );
  });
  it('a lease without a host name reads "another computer"', () => {
    expect(plainText(standbyBanner(standby({ ...pi, host: '' }), now)!)).toContain('stands by: another computer runs the fleet (since 09:05)');
  });
  it('on the computer of the active manager it speaks of the other service, not of the computer by name', () => {
    const here = { ...standby(pi), host: 'garden-pi' };
    expect(plainText(standbyBanner(here, now)!)).toBe(
      'This service stands by: another Cloudmanager service on this computer (process 4242) runs the fleet (since 09:05). ' +
        'Boards, code, files and jobs work from here; flashing boards over USB works through that service.',
    );
    const notice = usbElsewhere('flash', here, null);
    expect(notice.title).toBe('Flashing works through the other Cloudmanager service');
    expect(plainText(notice.parts)).toBe(
      'Only the service that runs the fleet uses the USB ports, and that is another Cloudmanager service on this computer (process 4242): ' +
        "flash it from that service's window or its mbm. A board flashed there shows up here too.",
    );
  });
  it('is null on the active manager and before the first status', () => {
    expect(standbyBanner({ ...activeRole, active: pi }, now)).toBeNull();
    expect(standbyBanner(undefined, now)).toBeNull();
    expect(standbyBanner(null, now)).toBeNull();
  });
});

describe('USB and uploads on a standby', () => {
  it('the flash page says where flashing works and why not here', () => {
    const notice = usbElsewhere('flash', standby(pi), 'this manager is standing by');
    expect(notice.title).toBe('Flashing works on garden-pi');
    expect(plainText(notice.parts)).toBe(
      'Only the computer that runs the fleet uses its USB ports, and that is garden-pi: plug the board into garden-pi and flash it from Cloudmanager there. ' +
        'A board flashed there shows up here too.',
    );
  });
  it('the USB console says the same of itself', () => {
    const notice = usbElsewhere('console', standby(pi), null);
    expect(notice.title).toBe('The USB console works on garden-pi');
    expect(plainText(notice.parts)).toBe(
      'Only the computer that runs the fleet uses its USB ports, and that is garden-pi: plug the board into garden-pi and open its console from Cloudmanager there.',
    );
  });
  it('with no computer running the fleet it says this one takes over', () => {
    const notice = usbElsewhere('flash', standby(null), null);
    expect(notice.title).toBe('No computer runs the fleet right now');
    expect(plainText(notice.parts)).toMatch(/takes over within a few seconds; then it works from here\.$/);
  });
  it("without a known role it gives the service's own message", () => {
    expect(plainText(usbElsewhere('flash', undefined, 'this manager is standing by; the active one is garden-pi (pid 4242)').parts)).toBe(
      'Flashing is not available here: this manager is standing by; the active one is garden-pi (pid 4242).',
    );
  });
});
