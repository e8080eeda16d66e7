/** One ticking clock for every "3 s ago" on the page (one timer, not one per row). */
class Clock {
  now = $state(Date.now());
  private timer: ReturnType<typeof setInterval> | null = null;

  start(): void {
    this.timer ??= setInterval(() => (this.now = Date.now()), 1000);
  }
}

export const clock = new Clock();
