-- uniqueMode "replace" on a key whose task is already running queues a new task behind it. Both rows are live, so
-- the running one steps out of the unique index: `unique_superseded` marks a task whose key was handed on to a
-- newer task. It keeps its unique_key (it still reads as that key's task) but no longer holds it. Only an enqueue
-- with "replace" sets it, and only on a PROGRESS row; no worker statement changes it, so claims, outcomes and sweeps
-- can never meet a unique violation. See docs/architecture.md, Unique keys.
ALTER TABLE tasks ADD COLUMN unique_superseded boolean NOT NULL DEFAULT false;

DROP INDEX tasks_unique_key_idx;
CREATE UNIQUE INDEX tasks_unique_key_idx ON tasks_live (unique_key) WHERE unique_key IS NOT NULL AND NOT unique_superseded;
