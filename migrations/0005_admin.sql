-- Listing and counting the tasks that did not succeed. A finished row is in tasks_done, whose only index was its
-- primary key: listing FAILED tasks newest first among a million COMPLETED rows read the whole partition backwards
-- (13 ms for a page when one row in a thousand failed, the whole partition when fewer did), and counting them read
-- every row. This partial index holds only FAILED and CANCELLED rows, so a completion, by far the most common write
-- to tasks_done, does not touch it: 100,000 completions moved into a partition of 1,000,000 rows took as long with it
-- as without (within the noise of 0.45–0.95 s), where indexes on (queue, id) and (name, id) took 0.75–1.65 s.
-- `queue` is included so countTasks counts these rows per queue from the index alone. See docs/drafts/admin.md.
CREATE INDEX tasks_done_unsuccessful_idx ON tasks_done (status, id) INCLUDE (queue)
  WHERE status IN ('FAILED', 'CANCELLED');
