import type { ColumnType, Generated } from "kysely";
import type { JsonValue, StoredError, StoredProgress, TaskStatus } from "../task.js";

/** The tasks table as kysely sees it (snake_case, as in SQL). */
export interface TasksTable {
  id: ColumnType<string, never, never>;
  name: string;
  args: ColumnType<JsonValue[], string, string>;
  queue: Generated<string>;
  priority: Generated<number>;
  status: Generated<TaskStatus>;
  result: ColumnType<JsonValue | null, string | null, string | null>;
  error: string | null;
  retry_count: Generated<number>;
  max_retries: Generated<number>;
  timeout: Generated<number>;
  run_at: Generated<Date>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  started_at: Date | null;
  finished_at: Date | null;
  duration: number | null;
  attempt: Generated<number>;
  worker_id: string | null;
  heartbeat_at: Date | null;
  unique_key: string | null;
  cancel_requested: Generated<boolean>;
  progress: ColumnType<StoredProgress | null, string | null, string | null>;
  errors: ColumnType<StoredError[], string | undefined, string>;
  meta: ColumnType<{ [key: string]: JsonValue }, string | undefined, string>;
  /** A running task whose unique key was handed on to a newer task (uniqueMode "replace"); see migration 0006. */
  unique_superseded: Generated<boolean>;
}

export interface MigrationsTable {
  id: number;
  name: string;
  applied_at: Generated<Date>;
}

export interface Database {
  tasks: TasksTable;
  migrations: MigrationsTable;
}
