-- Every claim and completion leaves a dead row version, so the table is vacuumed and analyzed far more eagerly than
-- the defaults; fillfactor stays at 100 (no task update can be HOT, and 70 drained no faster). Migration 0003 moves
-- these settings to tasks_live. See docs/architecture.md, Two partitions: live and finished.
ALTER TABLE tasks SET (
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 1
);
