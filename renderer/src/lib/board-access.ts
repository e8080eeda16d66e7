/**
 * What the UI says about a board that may not log in (revoked by the user, or suspended by
 * the service for going over its budget): the badge on its fleet row and the notice on its
 * page. Pure, so every wording is tested without a browser.
 */
import type { BoardSummary } from '../../../electron/manager/api/contract.js';
import { formatAgo } from './format.js';

export interface AccessBadge {
  /** "suspended" or "revoked": the pill's word. */
  label: 'suspended' | 'revoked';
  /** The tooltip: why, and since when. */
  title: string;
}

export interface AccessNotice {
  heading: string;
  /** Why, what it means for the board, and what Enable does. */
  text: string;
}

/** The fleet row's badge, or null for a board that may log in. */
export function accessBadge(board: Pick<BoardSummary, 'disabled'>, now: number): AccessBadge | null {
  const disabled = board.disabled;
  if (!disabled) return null;
  const since = formatAgo(disabled.at, now);
  return disabled.kind === 'suspended'
    ? { label: 'suspended', title: `Suspended ${since}: ${disabled.reason}. Open the board to enable it.` }
    : { label: 'revoked', title: `Revoked ${since}: it cannot log in. Open the board to enable it.` };
}

/** The board page's notice above the Enable button, or null for a board that may log in. */
export function accessNotice(board: Pick<BoardSummary, 'name' | 'disabled'>, now: number): AccessNotice | null {
  const disabled = board.disabled;
  if (!disabled) return null;
  const since = formatAgo(disabled.at, now);
  if (disabled.kind === 'suspended') {
    return {
      heading: `${board.name} was suspended ${since}`,
      text:
        `The service cut it off because ${disabled.reason}. It cannot log in until you enable it; ` +
        'if it does the same again, it is suspended again. Check the program running on it first.',
    };
  }
  return {
    heading: `${board.name} was revoked ${since}`,
    text: 'It cannot log in. Enable it to let it back in with the credentials it has: nothing needs setting up again.',
  };
}
