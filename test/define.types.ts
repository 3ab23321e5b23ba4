// Compile-time checks of defineTask's JSON constraint, run by `npm run typecheck` (not by vitest): each line
// marked as expecting an error must fail to compile, every other line must compile.
import { defineTask, type Task } from "../src/index.js";

interface Order {
  id: string;
  lines: { sku: string; qty: number }[];
  note?: string;
  meta: Record<string, number | null>;
}

export const typed = [
  defineTask("t.add", (a: number, b: number) => a + b),
  defineTask("t.order", async (order: Order, retry?: boolean) => ({ ok: true, lines: order.lines.length, retry })),
  defineTask("t.void", () => {}),
  defineTask("t.asyncVoid", async () => {}),
  defineTask("t.loose", (x: unknown, y: any) => [x, y] as unknown),
  defineTask("t.rest", (...xs: string[]) => xs.join()),
  defineTask("t.tuple", (pair: [string, number]) => pair[1]),
  defineTask("t.literal", (mode: "a" | "b", n: 1 | 2 | null) => (mode === "a" ? n : null)),
  defineTask("t.this", function (this: { attempt: number }, x: number) {
    return this.attempt + x;
  }),
] as const;

export async function enqueues(): Promise<Task<{ ok: boolean; lines: number; retry: boolean | undefined }>> {
  // @ts-expect-error the arguments are checked against the handler's parameters
  await typed[0].enqueue("1", 2);
  return typed[1].enqueue({ id: "o1", lines: [], meta: {} });
}

// A Date reaches the handler as an ISO string: not a parameter type.
// @ts-expect-error a Date parameter
defineTask("t.date", (when: Date) => when.getTime());
// @ts-expect-error nested, too
defineTask("t.nestedDate", (o: { at: { when: Date } }) => o.at);
// @ts-expect-error and not a result type either
defineTask("t.dateResult", () => new Date());
// @ts-expect-error a promise of one is no better
defineTask("t.asyncDate", async () => ({ at: new Date() }));
// @ts-expect-error bigint
defineTask("t.bigint", (n: bigint) => Number(n));
// @ts-expect-error Map
defineTask("t.map", () => new Map<string, number>());
// @ts-expect-error Set inside an array
defineTask("t.set", (sets: Set<string>[]) => sets.length);
// @ts-expect-error a function
defineTask("t.fn", (cb: () => void) => cb);
// @ts-expect-error a class instance with methods
defineTask("t.class", (u: URL) => u.href);
// @ts-expect-error undefined in an array becomes null
defineTask("t.holes", (xs: (string | undefined)[]) => xs.length);
