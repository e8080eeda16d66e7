/** Whether a command has ended (the service's final statuses, as the contract lists them). */
import type { CommandStatus, CommandView } from '../../../electron/manager/api/contract.js';

const FINAL: ReadonlySet<CommandStatus> = new Set<CommandStatus>(['ok', 'error', 'timeout', 'expired', 'cancelled', 'lost']);

export function isFinal(view: Pick<CommandView, 'status'>): boolean {
  return FINAL.has(view.status);
}
