import { describe, expect, it } from "vitest";
import { Deadlines, type Expiring } from "../src/worker/deadlines.js";
import { waitFor } from "./helpers.js";

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
  it("expires exactly the items still running at their deadline, never before it", async () => {
    const d = new Deadlines();
    const items = Array.from({ length: 5000 }, () => new Item(d, 150));
    // Finish all but every 500th, in a scattered order, so both the head skipping and the bulk compaction run.
    const keep = new Set(items.filter((_, i) => i % 500 === 7));
    for (let i = items.length - 1; i >= 0; i -= 2) if (!keep.has(items[i]!)) items[i]!.finish();
    for (let i = 0; i < items.length; i += 2) if (!keep.has(items[i]!)) items[i]!.finish();
    await waitFor("the kept items to expire", () => [...keep].every((it) => it.expiredAt !== null), 5000, 10);
    for (const it of keep) expect(it.expiredAt! - it.addedAt).toBeGreaterThanOrEqual(149);
    expect(items.filter((it) => it.expiredAt !== null)).toHaveLength(keep.size);
    d.close();
  });

  it("keeps lanes of different lengths apart, and items added while one fires", async () => {
    const d = new Deadlines();
    const slow = new Item(d, 400);
    const fast = new Item(d, 60);
    const later: Item[] = [];
    await waitFor("the short deadline", () => fast.expiredAt !== null, 5000, 5);
    expect(slow.expiredAt).toBeNull();
    later.push(new Item(d, 60), new Item(d, 60));
    later[0]!.finish();
    await waitFor(
      "the long deadline and the second short one",
      () => slow.expiredAt !== null && later[1]!.expiredAt !== null,
      5000,
      5,
    );
    expect(later[0]!.expiredAt).toBeNull();
    expect(slow.expiredAt! - slow.addedAt).toBeGreaterThanOrEqual(399);
    d.close();
  });

  it("expires nothing after close()", async () => {
    const d = new Deadlines();
    const a = new Item(d, 30);
    const b = new Item(d, 50);
    d.close();
    const marker = new Item(new Deadlines(), 120);
    await waitFor("a later deadline on another instance", () => marker.expiredAt !== null, 5000, 5);
    expect(a.expiredAt).toBeNull();
    expect(b.expiredAt).toBeNull();
  });
});
