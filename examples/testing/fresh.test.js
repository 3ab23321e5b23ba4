// Another file, another database: nothing from orders.test.js is here.
import { expect, it } from "vitest";
import { useSkiplock } from "./skiplock-fixture.js";

const { client } = useSkiplock();

it("starts empty", async () => {
  expect((await client.countTasks()).totals).toEqual({
    PENDING: 0,
    PROGRESS: 0,
    COMPLETED: 0,
    FAILED: 0,
    CANCELLED: 0,
  });
});
