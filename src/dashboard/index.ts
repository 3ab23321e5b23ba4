export { createDashboard, type Dashboard, type DashboardOptions } from "./create-dashboard.js";
export type { DashboardStats } from "./stats.js";
export { TASK_ACTIONS, MAX_BULK_IDS, type TaskAction } from "./actions.js";
