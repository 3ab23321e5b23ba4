// Compile-time checks of defineTask's JSON constraint, run by `npm run typecheck` (not by vitest): each line
// marked as expecting an error must fail to compile, every other line must compile.
import type { Transaction } from "kysely";
import type pg from "pg";
import {
  defineTask,
  DummyClient,
  ImmediateClient,
  setDefaultClient,
  SkiplockClient,
  type Task,
  type TaskClient,
  type TaskHandle,
} from "../src/index.js";

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

// Handles: argument and result types flow from the handler to enqueue, enqueueMany, using, getResult and waitFor.
const add = defineTask("t.addTwo", (a: number, b: number) => a + b);
const send = defineTask("t.send", async (to: string, subject?: string) => ({ sent: true, to, subject: subject ?? "" }));

export async function handles(client: TaskClient, trx: Transaction<unknown>, pgClient: pg.PoolClient): Promise<void> {
  const one: Task<number> = await add.enqueue(1, 2);
  const many: Task<number>[] = await add.enqueueMany([
    [1, 2],
    [3, 4],
  ]);
  const sent: Task<{ sent: boolean; to: string; subject: string }> = await send.enqueue("a@example.com");
  await send.enqueueMany([["a@example.com"], ["b@example.com", "hi"]]);
  const layered: TaskHandle<[number, number], number> = add.using({ priority: 1 }).using({ queue: "q", client });
  await layered.enqueue(5, 6);
  await add.using({ client: new ImmediateClient({ tasks: [add] }) }).enqueue(1, 1);
  await add.using({ client: new DummyClient() }).enqueueMany([[1, 1]]);
  const n: number | undefined = (await add.getResult(one.id))?.result ?? undefined;
  const to: string | undefined = (await send.waitFor(sent.id, { timeout: 1 }))?.result?.to;
  void [many, n, to];
  // The enqueue options a user's code passes in production, to any client.
  const debounced: TaskHandle<[number, number], number> = add.using({ uniqueKey: "k", uniqueMode: "replace" });
  await debounced.using({ meta: { requestId: "r" }, transaction: trx }).enqueue(1, 2);
  await add.using({ transaction: pgClient, client: new DummyClient() }).enqueueMany([[1, 2]]);

  // @ts-expect-error enqueue checks the parameters
  await add.enqueue(1);
  // @ts-expect-error enqueueMany checks each argument list
  await add.enqueueMany([[1, "2"]]);
  // @ts-expect-error enqueueMany takes a list of argument lists
  await add.enqueueMany([1, 2]);
  // @ts-expect-error a handle from using() keeps the parameter types
  await add.using({ delay: 5 }).enqueue("x", 1);
  // @ts-expect-error getResult's task has the handler's result type
  const wrong: Task<string> | null = await add.getResult("1");
  // @ts-expect-error and so has waitFor's
  const nope: boolean | undefined = (await send.waitFor("1"))?.result?.to;
  // @ts-expect-error using() takes enqueue options, not a definition's
  add.using({ isolation: "thread" });
  // @ts-expect-error a client is a TaskClient
  add.using({ client: {} });
  // @ts-expect-error uniqueMode is "keep" or "replace"
  add.using({ uniqueKey: "k", uniqueMode: "debounce" });
  // @ts-expect-error meta is an object
  add.using({ meta: "tenant-1" });
  void [wrong, nope];
}

// The real client and both test modes are TaskClients, and setDefaultClient takes any of them (or null).
export const clients: TaskClient[] = [
  new SkiplockClient(),
  new ImmediateClient({ tasks: { a: () => 1 } }),
  new DummyClient(),
];
setDefaultClient(clients[1]!);
setDefaultClient(null);
// @ts-expect-error an ImmediateClient needs its handlers
new ImmediateClient({});
