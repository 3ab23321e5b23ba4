import { describe, expect, it } from "vitest";
import { NullNotifier, publishWakes } from "../src/notify/index.js";

/** A notifier that records its wake-ups instead of sending them. */
class RecordingNotifier extends NullNotifier {
  readonly wakes: [string, number, number | undefined][] = [];
  override publishWake(queue: string, count: number, dueAt?: number): void {
    this.wakes.push([queue, count, dueAt]);
  }
}

describe("publishWakes", () => {
  it("rings once per queue for the tasks due now, and once per queue and due time for those due later", () => {
    const now = new Date("2030-01-01T00:00:00Z");
    const at = (seconds: number) => new Date(now.getTime() + seconds * 1000);
    const notifier = new RecordingNotifier();
    publishWakes(notifier, [
      { queue: "a", createdAt: now, runAt: now },
      { queue: "b", createdAt: now, runAt: at(60) },
      { queue: "a", createdAt: now, runAt: now },
      { queue: "b", createdAt: now, runAt: at(5) },
      { queue: "b", createdAt: now, runAt: at(60) },
      { queue: "a", createdAt: now, runAt: at(-30) }, // runAt in the past: due now
      { queue: "c", createdAt: now, runAt: now },
    ]);
    expect(notifier.wakes).toEqual([
      ["a", 3, undefined],
      ["c", 1, undefined],
      ["b", 1, at(5).getTime()],
      ["b", 2, at(60).getTime()],
    ]);
  });

  it("announces at most 64 due times per queue: the rest share the last message, at the earliest of them", () => {
    const now = new Date("2030-01-01T00:00:00Z");
    const notifier = new RecordingNotifier();
    publishWakes(
      notifier,
      Array.from({ length: 100 }, (_, i) => ({
        queue: "q",
        createdAt: now,
        runAt: new Date(now.getTime() + (100 - i) * 1000),
      })),
    );
    expect(notifier.wakes).toHaveLength(64);
    expect(notifier.wakes[0]).toEqual(["q", 1, now.getTime() + 1000]);
    expect(notifier.wakes[63]).toEqual(["q", 37, now.getTime() + 64_000]);
  });

  it("sends nothing for no tasks", () => {
    const notifier = new RecordingNotifier();
    publishWakes(notifier, []);
    expect(notifier.wakes).toEqual([]);
  });
});
