/**
 * Signing the UI in without a password prompt (DESIGN.md "The UI and how it reaches the
 * service"): a one-time code in a URL, printed by the CLI or handed to the Electron
 * window, is exchanged for an HttpOnly SameSite=Strict session cookie. The code is single
 * use and short-lived; the session id never reaches page JavaScript. Only digests of codes
 * and session ids are kept, so a heap dump does not hand out a working cookie.
 */
import { createHash, randomBytes } from 'node:crypto';

/** How long a sign-in link works. */
export const SIGNIN_CODE_TTL_MS = 2 * 60_000;
/** A session unused for this long is forgotten. */
export const SESSION_IDLE_MS = 7 * 24 * 3_600_000;
const MAX_OPEN_CODES = 100;
const MAX_SESSIONS = 1_000;

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export type SigninOutcome = { ok: true; sessionId: string } | { ok: false; reason: 'unknown' | 'used' | 'expired' };

export class UiSessions {
  /** digest(code) → expiry; a used code stays (marked) until it expires, so a second use says so. */
  private readonly codes = new Map<string, { expiresAt: number; used: boolean }>();
  /** digest(session id) → last use (ms epoch). */
  private readonly sessions = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A fresh one-time sign-in code. */
  createCode(): { code: string; expiresAt: number } {
    this.prune();
    if (this.codes.size >= MAX_OPEN_CODES) this.codes.delete(this.codes.keys().next().value!);
    const code = randomBytes(24).toString('base64url');
    const expiresAt = this.now() + SIGNIN_CODE_TTL_MS;
    this.codes.set(digest(code), { expiresAt, used: false });
    return { code, expiresAt };
  }

  /** Exchanges a code for a new session; a code works once, within its lifetime. */
  redeem(code: string): SigninOutcome {
    const entry = this.codes.get(digest(code));
    if (!entry) return { ok: false, reason: 'unknown' };
    if (entry.used) return { ok: false, reason: 'used' };
    if (this.now() > entry.expiresAt) return { ok: false, reason: 'expired' };
    entry.used = true;
    const sessionId = randomBytes(32).toString('base64url');
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(digest(sessionId), this.now());
    return { ok: true, sessionId };
  }

  /** True (and the session kept alive) when `sessionId` is a live session. */
  check(sessionId: string | undefined): boolean {
    if (!sessionId) return false;
    const key = digest(sessionId);
    const lastUse = this.sessions.get(key);
    if (lastUse === undefined) return false;
    if (this.now() - lastUse > SESSION_IDLE_MS) {
      this.sessions.delete(key);
      return false;
    }
    this.sessions.set(key, this.now());
    return true;
  }

  end(sessionId: string | undefined): void {
    if (sessionId) this.sessions.delete(digest(sessionId));
  }

  private prune(): void {
    const now = this.now();
    for (const [key, entry] of this.codes) if (now > entry.expiresAt) this.codes.delete(key);
  }
}

/** The session cookie's name carries the port: services on other ports keep their own. */
export function sessionCookieName(port: number): string {
  return `cm_session_${port}`;
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index === -1) continue;
    if (part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

export function sessionCookie(name: string, value: string): string {
  return `${name}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.round(SESSION_IDLE_MS / 1000)}`;
}

export function clearedCookie(name: string): string {
  return `${name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}
