// @ts-check
// What autovacuum did to the soak's tables, read from the server's log (log_autovacuum_min_duration = 0 logs every
// run): a multi-line message per run, its detail lines indented by a tab.

/**
 * @typedef {object} TableVacuums
 * @property {number} vacuums
 * @property {number} analyzes
 * @property {number} removedTuples dead row versions the runs removed
 * @property {number} maxElapsedSeconds the longest run
 * @property {number | null} pagesAtLastRun the table's pages after its last vacuum
 * @property {number[]} removedPerRun in order
 */

/**
 * @param {string} log the server's log
 * @param {string} schema
 * @returns {Record<string, TableVacuums>} by table name
 */
export function readAutovacuumLog(log, schema) {
  /** @type {Record<string, TableVacuums>} */
  const tables = {};
  const lines = log.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const head = /automatic (vacuum|analyze) of table "[^."]+\.([^."]+)\.([^"]+)"/.exec(lines[i] ?? "");
    if (!head || head[2] !== schema) continue;
    const name = /** @type {string} */ (head[3]);
    const t = (tables[name] ??= {
      vacuums: 0,
      analyzes: 0,
      removedTuples: 0,
      maxElapsedSeconds: 0,
      pagesAtLastRun: null,
      removedPerRun: [],
    });
    let detail = "";
    while ((lines[i + 1] ?? "").startsWith("\t")) detail += `${lines[++i]}\n`;
    const elapsed = Number(/elapsed: ([\d.]+) s/.exec(detail)?.[1] ?? 0);
    t.maxElapsedSeconds = Math.max(t.maxElapsedSeconds, elapsed);
    if (head[1] === "analyze") {
      t.analyzes++;
      continue;
    }
    t.vacuums++;
    const removed = Number(/tuples: (\d+) removed/.exec(detail)?.[1] ?? 0);
    t.removedTuples += removed;
    t.removedPerRun.push(removed);
    const pages = /pages: \d+ removed, (\d+) remain/.exec(detail);
    if (pages) t.pagesAtLastRun = Number(pages[1]);
  }
  return tables;
}
