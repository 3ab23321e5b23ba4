// The app's code enqueues; the test runs the worker until nothing is due and looks at the outcome.
import { expect, it } from "vitest";
import { useSkiplock } from "./skiplock-fixture.js";

const { client, worker } = useSkiplock();

/**
 * The app's code under test: places an order and enqueues its receipt in the same transaction.
 * @param {number} id
 */
async function placeOrder(id) {
  return client.transaction(async (tx) => tx.createTask("receipt", [id], { maxRetries: 1 }));
}

it("sends the receipt of an order", async () => {
  const task = await placeOrder(42);
  await worker({ receipt: (/** @type {number} */ id) => `receipt for order ${id}` }).runUntilIdle();
  const done = await client.getTask(task.id);
  expect(done).toMatchObject({ status: "COMPLETED", result: "receipt for order 42" });
});

it("retries a receipt that failed once", async () => {
  let calls = 0;
  const task = await placeOrder(7);
  const w = worker(
    {
      receipt: () => {
        if (++calls === 1) throw new Error("mail server busy");
        return "sent";
      },
    },
    { retryBackoff: { base: 0.01, max: 0.01 } },
  );
  await w.start();
  try {
    const done = await client.waitForCompletion(task.id, { timeout: 10 });
    expect(done).toMatchObject({ status: "COMPLETED", result: "sent", retryCount: 1 });
  } finally {
    await w.stop();
  }
});
