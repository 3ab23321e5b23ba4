import { afterEach, describe, expect, it, vi } from "vitest";
import { DATABASE_RETRY, RetryDelay, retryDelay } from "../src/retry-delay.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("retryDelay", () => {
  it("doubles from firstMs up to maxMs, each wait scaled by a factor in [0.5, 1)", () => {
    const policy = { firstMs: 100, maxMs: 3000 };
    vi.spyOn(Math, "random").mockReturnValue(0.999_999);
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 50, 5000].map((n) => Math.round(retryDelay(n, policy)));
    expect(ceilings).toEqual([100, 200, 400, 800, 1600, 3000, 3000, 3000, 3000]);
    vi.spyOn(Math, "random").mockReturnValue(0);
    expect(retryDelay(0, policy)).toBe(50);
    expect(retryDelay(9, policy)).toBe(1500);
  });
});

describe("RetryDelay", () => {
  it("grows with each failure in a row and starts over after reset", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999_999);
    const delay = new RetryDelay(); // DATABASE_RETRY: 100 ms up to 5 s
    expect(delay.current).toBe(0);
    const waits = Array.from({ length: 8 }, () => Math.round(delay.next()));
    expect(waits).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(Math.round(delay.current)).toBe(DATABASE_RETRY.maxMs);
    delay.reset();
    expect(delay.current).toBe(0);
    expect(Math.round(delay.next())).toBe(100);
  });
});
