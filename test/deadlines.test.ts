import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadlines, type Expiring } from "../src/worker/deadlines.js";

// Fake timers: the deadlines are checked against the clock the test moves, not raced against real time.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** An attempt stand-in: done when finished or expired; records when it expired. */
class Item implements Expiring {
  done = false;
  expiredAt: number | null = null;
  readonly addedAt = performance.now();
  constructor(
    readonly deadlines: Deadlines,
    readonly ms: number,
  ) {
    deadlines.add(ms, this);
  }
  expire(): void {
    if (this.done) throw new Error("expired after it was done");
    this.expiredAt = performance.now();
    this.finish();
  }
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.deadlines.finished(this.ms);
  }
}

describe("Deadlines (one timer per timeout length)", () => {
  it("expires exactly the items still running at their deadline, never before it", () => {
    const d = new Deadlines();
    const items = Array.from({ length: 5000 }, () => new Item(d, 150));
    // Finish all but every 500th, in a scattered order, so both the head skipping and the bulk compaction run.
    const keep = new Set(items.filter((_, i) => i % 500 === 7));
    for (let i = items.length - 1; i >= 0; i -= 2) if (!keep.has(items[i]!)) items[i]!.finish();
    for (let i = 0; i < items.length; i += 2) if (!keep.has(items[i]!)) items[i]!.finish();
    vi.advanceTimersByTime(148);
    expect(items.filter((it) => it.expiredAt !== null)).toEqual([]);
    vi.advanceTimersByTime(10);
    for (const it of keep) expect(it.expiredAt! - it.addedAt).toBeGreaterThanOrEqual(149);
    expect(items.filter((it) => it.expiredAt !== null)).toHaveLength(keep.size);
    d.close();
  });

  it("keeps lanes of different lengths apart, and items added while one fires", () => {
    const d = new Deadlines();
    const slow = new Item(d, 400);
    const fast = new Item(d, 60);
    vi.advanceTimersByTime(61);
    expect(fast.expiredAt).not.toBeNull();
    expect(slow.expiredAt).toBeNull();
    const later = [new Item(d, 60), new Item(d, 60)];
    later[0]!.finish();
    vi.advanceTimersByTime(61);
    expect(later[1]!.expiredAt).not.toBeNull();
    expect(later[0]!.expiredAt).toBeNull();
    expect(slow.expiredAt).toBeNull();
    vi.advanceTimersByTime(400);
    expect(slow.expiredAt! - slow.addedAt).toBeGreaterThanOrEqual(399);
    d.close();
  });

  it("expires nothing after close()", () => {
    const d = new Deadlines();
    const a = new Item(d, 30);
    const b = new Item(d, 50);
    d.close();
    vi.advanceTimersByTime(1000);
    expect(a.expiredAt).toBeNull();
    expect(b.expiredAt).toBeNull();
  });
});
