/** In-page notifications (a board went offline, a job is done, a flash finished, errors). */
export type NoticeKind = 'info' | 'success' | 'warning' | 'error';

export interface Notice {
  id: number;
  kind: NoticeKind;
  text: string;
  /** Optional link (a hash route) the notice opens when clicked. */
  href?: string;
}

const VISIBLE_MS: Record<NoticeKind, number> = { info: 5000, success: 5000, warning: 8000, error: 12000 };
const MAX_SHOWN = 5;

class Notifications {
  items = $state<Notice[]>([]);
  private next = 1;

  push(kind: NoticeKind, text: string, href?: string): void {
    const notice: Notice = { id: this.next++, kind, text, ...(href ? { href } : {}) };
    this.items = [...this.items, notice].slice(-MAX_SHOWN);
    setTimeout(() => this.dismiss(notice.id), VISIBLE_MS[kind]);
  }

  dismiss(id: number): void {
    this.items = this.items.filter((item) => item.id !== id);
  }
}

export const notifications = new Notifications();
