-- Listing and counting the tasks that did not succeed. A finished row is in tasks_done, whose only index was its
-- primary key: listing FAILED tasks newest first among a million COMPLETED rows read the whole partition backwards
-- (13 ms for a page when one row in a thousand failed, further back the rarer failures were), and counting them read
-- every row. This partial index holds only FAILED and CANCELLED rows, so a completion, by far the most common write
-- to tasks_done, does not touch it: 20,000-task drains into 200,000 finished rows ran at 17,600–20,700 tasks/s with
-- it and 16,500–18,800 without (the same noise), where indexes on (queue, id) and (name, id) made moving completed
-- rows into tasks_done 1.5–2 times slower.
-- `queue` is included so countTasks counts these rows per queue from the index alone. See docs/architecture.md, Managing tasks.
CREATE INDEX tasks_done_unsuccessful_idx ON tasks_done (status, id) INCLUDE (queue)
  WHERE status IN ('FAILED', 'CANCELLED');
