/**
 * Secrets a user keeps in a board's settings are masked wherever they are shown (`settings`,
 * the history's command summary), however deep they sit.
 */
import { describe, expect, it } from 'vitest';
import { describeCommand, maskSecrets, redactConfig, REDACTED } from '../../electron/manager/fleet/command-ops.js';

describe('masking secrets', () => {
  it('masks secret keys at every depth, in arrays, and inside JSON text', () => {
    const config = {
      name: 'kitchen',
      wifi_password: 'top',
      dk: 'a'.repeat(64),
      wifi: { ssid: 'home', Password: 'nested' },
      networks: [
        { ssid: 'work', passphrase: 'in-array' },
        { api_key: 'v-key', psk: 'v-psk' },
      ],
      mqtt: JSON.stringify({ host: 'broker', auth: { token: 'in-json-text' } }),
      note: '{not json',
    };
    const masked = redactConfig(config) as Record<string, unknown>;
    expect(JSON.stringify(masked)).not.toMatch(/top|nested|in-array|v-key|v-psk|in-json-text|aaaa/);
    expect(masked).toMatchObject({ name: 'kitchen', wifi: { ssid: 'home', Password: REDACTED }, note: '{not json' });
    expect(JSON.parse(masked.mqtt as string)).toEqual({ host: 'broker', auth: { token: REDACTED } });
    expect(config.wifi.Password).toBe('nested');
  });

  it('masks whole what nests deeper than it looks', () => {
    let deep: unknown = { password: 'deep' };
    for (let level = 0; level < 2_000; level++) deep = [deep];
    expect(JSON.stringify(maskSecrets(deep))).not.toContain('deep');
  });

  it("a cfg_set's summary never carries a secret value", () => {
    expect(describeCommand({ op: 'cfg_set', key: 'wifi', value: { ssid: 'home', password: 'hunter2' } })).toBe(
      `cfg_set wifi=${JSON.stringify({ ssid: 'home', password: REDACTED }).slice(0, 40)}`,
    );
    expect(describeCommand({ op: 'cfg_set', key: 'mqtt_token', value: 'hunter2' })).toBe('cfg_set mqtt_token');
    expect(describeCommand({ op: 'cfg_set', key: 'mqtt', value: '{"secret":"hunter2"}' })).not.toContain('hunter2');
    expect(describeCommand({ op: 'cfg_set', key: 'hb', value: 10 })).toBe('cfg_set hb=10');
  });
});
