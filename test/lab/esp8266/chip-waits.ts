/**
 * The pauses of the simulated ESP8266 (esp8266-simulator.ts): the chip's time on the line,
 * the flash's work, the firmware's sleeps. A reset ends them all at once (releaseAll());
 * whoever waited then finds its life of the chip over (the simulator's epoch) and stops.
 */
export class ChipWaits {
  private readonly waits = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(
          () => {
            this.waits.delete(entry);
            resolve();
          },
          Math.max(0, ms),
        ),
        resolve,
      };
      this.waits.add(entry);
    });
  }

  /** Resolves every pending wait now. */
  releaseAll(): void {
    for (const wait of this.waits) {
      clearTimeout(wait.timer);
      wait.resolve();
    }
    this.waits.clear();
  }
}
