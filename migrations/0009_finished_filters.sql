-- Listing failed tasks by name (the dashboard's lists, listTasks: "what failed of this task?"). A name filter was
-- checked on each failure read newest first, so a name that failed rarely read every failure: on 1,000,000 finished
-- rows with 27,000 failures (bench/lines/dashboard-lists.js), 104 ms at p50; through this index, 0.7–2.1 ms.
-- Failures are few and rarely written, so the index costs the drain nothing; completed rows stay out of it (0005:
-- indexes on tasks_done slowed the statement that moves completed rows across 1.5–2 times).
--
-- `name IS NOT NULL` (always true) keeps the index from every query without a condition on name: the failure list,
-- its queue filter and countTasks keep tasks_done_unsuccessful_idx (status, id) INCLUDE (queue), as the plans in
-- test/admin-plans.test.ts expect. A BRIN index of bloom filters on name and queue was tried for the COMPLETED rows
-- too and left out: the planner's estimate of its matches was 20 times too low, and it took a queue filter on
-- failures from 4.5 ms to 660 ms (docs/architecture.md, Dashboard lists on a big history).
CREATE INDEX tasks_done_unsuccessful_name_idx ON tasks_done (name, status, id)
  WHERE status IN ('FAILED', 'CANCELLED') AND name IS NOT NULL;
