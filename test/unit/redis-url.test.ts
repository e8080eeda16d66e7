/** `--redis-url` forms: one server, a Cluster's seed nodes, Sentinel's sentinels and primary name; passwords never in messages. */
import { describe, expect, it } from 'vitest';
import { parseRedisTarget, redactRedisUrl, RedisUrlError } from '../../electron/manager/redis/redis-connection.js';
import { parseClusterReplicas, slotOf } from '../../electron/manager/redis/redis-nodes.js';
import { aclRulesOf, planUser } from '../../electron/manager/redis/acl-sync.js';

describe('parseRedisTarget', () => {
  it('reads one server as before', () => {
    expect(parseRedisTarget('redis://cm:s3cret@10.0.0.5:6380')).toEqual({
      kind: 'single',
      endpoint: { host: '10.0.0.5', port: 6380, username: 'cm', password: 's3cret', tls: false },
    });
  });

  it('reads a Cluster: every seed node, credentials for the data nodes, default port 6379', () => {
    expect(parseRedisTarget('redis+cluster://cm:p%40ss@h1:7000,h2,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'h1', port: 7000 },
        { host: 'h2', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      username: 'cm',
      password: 'p@ss',
    });
    expect(parseRedisTarget('rediss+cluster://h1:7000/')).toMatchObject({ kind: 'cluster', tls: true });
  });

  it('reads Sentinel: the sentinels (default port 26379), the primary name, the sentinels own password', () => {
    expect(parseRedisTarget('redis+sentinel://:datapw@s1:26380,s2/mymaster?sentinel_password=sentpw')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26380 },
        { host: 's2', port: 26379 },
      ],
      name: 'mymaster',
      password: 'datapw',
      sentinelPassword: 'sentpw',
    });
  });

  it('refuses what it cannot use, saying which form is expected and never quoting a password', () => {
    const refusal = (url: string) => {
      try {
        parseRedisTarget(url);
      } catch (error) {
        expect(error).toBeInstanceOf(RedisUrlError);
        return (error as Error).message;
      }
      throw new Error(`accepted ${url}`);
    };
    expect(refusal('redis+sentinel://u:hunter2@s1:26379')).toMatch(/names the primary after the hosts/);
    expect(refusal('redis+sentinel://u:hunter2@s1:26379')).not.toContain('hunter2');
    expect(refusal('redis+cluster://u:hunter2@h1:99999')).toMatch(/is not host:port/);
    expect(refusal('redis+cluster://u:hunter2@h1:99999')).not.toContain('hunter2');
    expect(refusal('redis+cluster://h1:7000/3')).toMatch(/no path/);
    expect(refusal('redis+cluster://')).toMatch(/host/);
    expect(refusal('http://h1:7000')).toMatch(/redis\+cluster:\/\//);
  });

  it('redacts the data nodes and the sentinels passwords', () => {
    expect(redactRedisUrl('redis+sentinel://cm:pw@s1:1,s2:2/m?sentinel_password=spw')).toBe('redis+sentinel://cm:****@s1:1,s2:2/m?sentinel_password=****');
  });
});

describe('parseClusterReplicas', () => {
  it('lists the connected replicas of a CLUSTER NODES reply, not failing ones or primaries', () => {
    const reply = [
      'a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460',
      'b2 127.0.0.1:7003@17003,node-d slave a1 0 1 4 connected',
      'c3 127.0.0.1:7004@17004 slave,fail a1 0 1 5 connected',
      'd4 [::1]:7005@17005 slave a1 0 1 6 connected',
      '',
    ].join('\n');
    expect(parseClusterReplicas(reply)).toEqual([
      { host: '127.0.0.1', port: 7003 },
      { host: '::1', port: 7005 },
    ]);
  });
});

describe('slotOf', () => {
  it('computes the Cluster slot of a key from its hash tag, like redis-cli CLUSTER KEYSLOT', () => {
    // CLUSTER KEYSLOT foo = 12182; the tag {foo} makes every key with it share that slot.
    expect(slotOf('foo')).toBe(12182);
    expect(slotOf('cm:{foo}:up')).toBe(12182);
  });
});

describe('planUser (board users across nodes)', () => {
  const line = (state: string, commands: string) =>
    `user cmb-b1 ${state} sanitize-payload #aa ~cm:{b1}:cmd resetchannels -@all ${commands} (%W~cm:{b1}:up resetchannels -@all +xadd)`;
  it('copies the user to nodes that lack it, whatever order each node lists its commands in', () => {
    const plan = planUser([line('on', '+ping +xread'), line('on', '+xread +ping'), undefined], true);
    expect(plan).toEqual({ wanted: line('on', '+ping +xread'), stale: [2] });
    expect(aclRulesOf(plan.wanted!)).toContain('(%W~cm:{b1}:up resetchannels -@all +xadd)');
  });
  it('switches the user off where a node missed a revocation, and leaves a disputed password alone', () => {
    expect(planUser([line('off', '+ping'), line('on', '+ping')], false)).toEqual({ wanted: line('off', '+ping'), stale: [1] });
    expect(planUser([line('on', '+ping'), line('on', '+ping').replace('#aa', '#bb')], true)).toEqual({ wanted: undefined, stale: [], disputed: true });
  });
});
