// Types of redis-cluster-lib.mjs (a plain script module), for the tests that import it.

export type LabRole = 'primary' | 'replica' | 'sentinel' | 'down';

export interface LabNode {
  port: number;
  role: LabRole;
  sentinel: boolean;
  dir: string;
  pidfile: string;
  pid?: number;
  id?: string;
}

export interface Lab {
  kind: 'cluster' | 'sentinel';
  dir: string;
  url: string;
  nodes: LabNode[];
  masters?: number;
  name?: string;
  sentinels?: LabNode[];
}

export interface Failover {
  killed: number;
  promoted: number;
}

export const lastLabPointer: string;
export function redisCommand(port: number, args: Array<string | number>, timeoutMs?: number): Promise<unknown>;
export function until<T>(check: () => T | Promise<T>, what: string, timeoutMs?: number): Promise<NonNullable<T>>;
export function freePortRange(start: number, count: number, bus?: boolean): Promise<number>;
export function killNode(node: LabNode): void;
export function readLab(dir: string): Promise<Lab | undefined>;
export function rememberedLabDir(): Promise<string | undefined>;
export function stopLab(lab: Lab): Promise<void>;
export function labSummary(lab: Lab): {
  nodes: Array<{ port: number; role: LabRole }>;
  sentinels?: Array<{ port: number }>;
  url: string;
  dir: string;
  state: string;
};
export function startCluster(options: {
  redisServer: string;
  masters?: number;
  replicas?: number;
  port?: number;
  dir?: string;
  nodeTimeoutMs?: number;
  remember?: boolean;
}): Promise<Lab>;
export function killClusterPrimary(lab: Lab, target?: number | 'any'): Promise<Failover>;
export function startSentinel(options: {
  redisServer: string;
  port?: number;
  dir?: string;
  replicas?: number;
  name?: string;
  remember?: boolean;
}): Promise<Lab>;
export function killSentinelPrimary(lab: Lab): Promise<Failover>;
