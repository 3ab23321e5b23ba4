-- A queue table turns its rows over constantly: every claim and every completion leaves a dead row version behind
-- and an index entry pointing at it. Vacuum it far more eagerly than the defaults (20% of the table) so the claim
-- index stays dense and the table does not bloat; analyze eagerly too, since the mix of statuses shifts quickly.
-- fillfactor stays at 100: every update of a task changes its status, which the partial indexes' predicates read,
-- so none can be a HOT update, and leaving free room on each page made no drain faster when measured (50,000-task
-- drains on 2 cores, fillfactor 70 against 100, alternating: within the noise, slightly slower if anything).
ALTER TABLE tasks SET (
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 1
);
