// @ts-check
// The chaos run's verdict: from the tasks table, the ledger, the handlers' trace files and the run's own event log,
// the figures and every invariant that failed, each with the rows and events needed to see why.

/**
 * @typedef {import("./workers.js").ChaosEvent} ChaosEvent
 * @typedef {import("./workload.js").Spec} Spec
 *
 * @typedef {object} TaskRow
 * @property {string} id
 * @property {number} k
 * @property {string} name
 * @property {string} status
 * @property {string | null} error
 * @property {number} attempt
 * @property {number} retry_count
 * @property {number | null} max_retries
 * @property {number | null} result_k
 * @property {string | null} worker_id
 * @property {number | null} started_at epoch ms
 * @property {number | null} finished_at epoch ms
 *
 * @typedef {object} LedgerRow
 * @property {string} run_id
 * @property {string} task_id
 * @property {number} attempt
 * @property {number} pid
 * @property {number} at epoch ms
 *
 * @typedef {object} Run one execution of a handler
 * @property {string} run
 * @property {string} task
 * @property {number} attempt
 * @property {number} pid
 * @property {number} at epoch ms, when the handler started
 * @property {boolean} traced
 * @property {boolean} ledger
 * @property {"ok" | "threw" | "aborted" | null} outcome null: no end recorded (killed while it ran)
 * @property {number | null} endAt
 *
 * @typedef {"retry after its failure" | "earlier run on a SIGKILLed worker" | "claim undone by a Postgres immediate restart"
 *   | "earlier run on a worker that exited on its own" | "earlier run on a SIGTERMed worker" | "unexplained"} RerunClass
 */

/** Classes of a re-run that break no promise. */
const ALLOWED = new Set(["retry after its failure", "earlier run on a SIGKILLed worker"]);
/** Allowed by the design's own account (an asynchronously committed claim lost in a crash), but reported. */
const EXPLAINED = new Set(["claim undone by a Postgres immediate restart"]);
/** The order in which a task with several re-runs is counted under one class: the worst first. */
const SEVERITY = [
  "unexplained",
  "earlier run on a SIGTERMed worker",
  "earlier run on a worker that exited on its own",
  "claim undone by a Postgres immediate restart",
  "earlier run on a SIGKILLed worker",
  "retry after its failure",
];

/** Events a surprise can be blamed on. */
const CHAOS_KINDS = new Set([
  "sigkill",
  "sigterm",
  "pg-stop",
  "pg-start",
  "redis-flushall",
  "redis-client-kill",
  "redis-stop",
  "redis-start",
  "worker-exit",
]);

/**
 * @param {object} o
 * @param {Spec[]} o.specs
 * @param {TaskRow[]} o.rows
 * @param {LedgerRow[]} o.ledger
 * @param {Record<string, any>[]} o.trace every line of every trace file
 * @param {ChaosEvent[]} o.events
 * @param {number} o.t0 epoch ms of the first enqueue: times in the report are seconds after it
 * @param {number} o.shutdownTimeout seconds
 * @param {{ pid: number, text: string }[]} o.workerLogs every worker process's log
 */
export function analyze({ specs, rows, ledger, trace, events, t0, shutdownTimeout, workerLogs }) {
  const rel = (/** @type {number} */ at) => Math.round((at - t0) / 100) / 10;
  /** @type {{ check: string, count: number, items: unknown[] }[]} */
  const violations = [];
  /** @param {string} check @param {unknown[]} items */
  const fail = (check, items) => {
    if (items.length > 0) violations.push({ check, count: items.length, items: items.slice(0, 25) });
  };

  // What the workers' logs say each sweep did to a task (a report may read logs; no check depends on them).
  /** @type {Map<string, { at: number, as: string }[]>} */
  const sweptAs = new Map();
  for (const { text } of workerLogs) {
    for (const line of text.split("\n")) {
      if (!line.includes("swept tasks of lost workers")) continue;
      try {
        const f = JSON.parse(line.slice(line.indexOf("{")));
        const at = rel(Date.parse(line.slice(0, 24)));
        for (const as of ["requeued", "handedBack", "failed"]) {
          for (const id of f[as] ?? []) sweptAs.set(id, [...(sweptAs.get(id) ?? []), { at, as }]);
        }
      } catch {
        // a line cut short by kill -9
      }
    }
  }

  // Completions a worker discarded because the lease was gone (logged by the worker), by task id.
  /** @type {Map<string, { at: number, pid: number }[]>} */
  const discarded = new Map();
  for (const { pid, text } of workerLogs) {
    for (const line of text.split("\n")) {
      const m = /completion discarded: task (\d+) attempt (\d+)/.exec(line);
      if (m?.[1])
        discarded.set(m[1], [...(discarded.get(m[1]) ?? []), { at: rel(Date.parse(line.slice(0, 24))), pid }]);
    }
  }

  // --- rows against the keys enqueued
  /** @type {Map<number, TaskRow[]>} */
  const byKey = new Map();
  for (const r of rows) byKey.set(r.k, [...(byKey.get(r.k) ?? []), r]);
  const lost = specs.filter((s) => !byKey.has(s.k)).map((s) => s.k);
  const twice = [...byKey].filter(([, rs]) => rs.length > 1).map(([k, rs]) => ({ k, ids: rs.map((r) => r.id) }));
  fail("lost: a task enqueued has no row", lost);
  fail("enqueued twice (the run's enqueuer, not the engine)", twice);

  /** @type {Record<string, number>} */
  const byStatus = {};
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const stuck = rows.filter((r) => r.status === "PENDING" || r.status === "PROGRESS");
  fail("stuck: PENDING or PROGRESS at the end", stuck);
  fail(
    "CANCELLED, though nothing was cancelled",
    rows.filter((r) => r.status === "CANCELLED"),
  );
  fail(
    "COMPLETED with a result that is not its own",
    rows.filter((r) => r.status === "COMPLETED" && r.result_k !== r.k),
  );

  // --- runs: the trace (written first, survives kill -9) joined with the ledger rows (in Postgres)
  /** @type {Map<string, Run>} */
  const runs = new Map();
  for (const line of trace) {
    if (line.e !== "start") continue;
    runs.set(line.run, {
      run: line.run,
      task: String(line.task),
      attempt: line.attempt,
      pid: line.pid,
      at: line.at,
      traced: true,
      ledger: false,
      outcome: null,
      endAt: null,
    });
  }
  let ledgerOnly = 0;
  for (const l of ledger) {
    const r = runs.get(l.run_id);
    if (r) r.ledger = true;
    else {
      ledgerOnly++;
      runs.set(l.run_id, {
        run: l.run_id,
        task: l.task_id,
        attempt: l.attempt,
        pid: l.pid,
        at: l.at,
        traced: false,
        ledger: true,
        outcome: null,
        endAt: null,
      });
    }
  }
  for (const line of trace) {
    const r = line.e === "end" ? runs.get(line.run) : undefined;
    if (r) {
      r.outcome = line.outcome;
      r.endAt = line.at;
    }
  }
  const ledgerGaveUp = trace.filter((l) => l.e === "ledger-gave-up");
  fail("a handler could not write its ledger row within its patience", ledgerGaveUp);
  /** @type {Map<string, Run[]>} */
  const runsOf = new Map();
  for (const r of runs.values()) runsOf.set(r.task, [...(runsOf.get(r.task) ?? []), r]);
  for (const rs of runsOf.values()) rs.sort((a, b) => a.at - b.at);

  // --- what the run did to the processes and servers
  /** @type {Map<number, number>} */
  const killedAt = new Map();
  /** @type {Map<number, number>} */
  const termAt = new Map();
  /** @type {Map<number, number>} */
  const crashedAt = new Map();
  for (const e of events) {
    if (e.kind === "sigkill" && e.pid) killedAt.set(e.pid, e.at);
    if (e.kind === "sigterm" && e.pid) termAt.set(e.pid, e.at);
    if (e.kind === "worker-exit" && e.pid && e.detail && e.detail.expected === false) crashedAt.set(e.pid, e.at);
  }
  /** Each immediate stop of Postgres, with when it was up again. */
  const immediateStops = events
    .filter((e) => e.kind === "pg-stop" && e.detail?.mode === "immediate")
    .map((e) => ({ at: e.at, upAt: events.find((x) => x.kind === "pg-start" && x.at > e.at)?.at ?? Infinity }));
  const chaos = events.filter((e) => CHAOS_KINDS.has(e.kind) && !(e.kind === "worker-exit" && e.detail?.expected));

  /** @param {number} at */
  const nearest = (at) => {
    let best = /** @type {ChaosEvent | null} */ (null);
    for (const e of chaos) if (!best || Math.abs(e.at - at) < Math.abs(best.at - at)) best = e;
    return best
      ? `${best.kind}${best.pid ? ` pid ${best.pid}` : ""}${best.detail?.mode ? ` (${best.detail.mode})` : ""} at ${rel(best.at)} s (${best.at >= at ? "+" : ""}${best.at - at} ms from the run)`
      : "none";
  };
  /** @param {Run} r */
  const show = (r) => ({
    pid: r.pid,
    attempt: r.attempt,
    at: rel(r.at),
    outcome: r.outcome ?? "no end (process gone)",
    ...(r.endAt ? { endAt: rel(r.endAt) } : {}),
    inLedger: r.ledger,
    ...(killedAt.has(r.pid) ? { pidKilledAt: rel(/** @type {number} */ (killedAt.get(r.pid))) } : {}),
    ...(termAt.has(r.pid) ? { pidTerminatedAt: rel(/** @type {number} */ (termAt.get(r.pid))) } : {}),
    ...(crashedAt.has(r.pid) ? { pidExitedOnItsOwnAt: rel(/** @type {number} */ (crashedAt.get(r.pid))) } : {}),
  });

  /**
   * For a task that has no run: the worker its row names, what the run did to that process, and that process's
   * handler starts just before (from its trace), so a reader can place the task in the process's last moments.
   * @param {TaskRow} r
   */
  const lastWorker = (r) => {
    const pid = Number(r.worker_id?.split(":")[1]);
    const killed = killedAt.get(pid);
    const ref = killed ?? crashedAt.get(pid) ?? termAt.get(pid) ?? null;
    const starts = [...runs.values()].filter((x) => x.pid === pid).sort((a, b) => b.at - a.at);
    return {
      workerId: r.worker_id,
      pid,
      startedAtInRow: r.started_at ? rel(r.started_at) : null,
      finishedAt: r.finished_at ? rel(r.finished_at) : null,
      ...(killed !== undefined ? { pidKilledAt: rel(killed) } : {}),
      ...(termAt.has(pid) ? { pidTerminatedAt: rel(/** @type {number} */ (termAt.get(pid))) } : {}),
      ...(crashedAt.has(pid) ? { pidExitedOnItsOwnAt: rel(/** @type {number} */ (crashedAt.get(pid))) } : {}),
      handlersStartedByPid: starts.length,
      lastStartsOfPid: starts
        .slice(0, 8)
        .map((x) => ({ task: x.task, at: rel(x.at), ...(ref ? { msBeforeKill: ref - x.at } : {}) })),
    };
  };

  /**
   * Why `next` ran after `prev` had.
   * @param {Run} prev
   * @param {Run} next
   * @returns {RerunClass}
   */
  const classify = (prev, next) => {
    if (prev.outcome === "threw") return "retry after its failure";
    const within = (/** @type {number | undefined} */ t) => t !== undefined && t >= prev.at && t <= next.at;
    if (within(killedAt.get(prev.pid))) return "earlier run on a SIGKILLed worker";
    if (within(crashedAt.get(prev.pid))) return "earlier run on a worker that exited on its own";
    if (within(termAt.get(prev.pid))) return "earlier run on a SIGTERMed worker";
    // A claim commits asynchronously (sql/claim.ts): a crash of the server within the WAL writer's delay after it
    // undoes it, and the task is claimed again under the same attempt number. The first run started shortly before
    // the crash, or from the prefetch buffer while the server was down or just back; its outcome is then discarded
    // ("no longer this worker's") and the task runs again, on any worker, this one included.
    const undone = immediateStops.some((s) => prev.at >= s.at - 1000 && prev.at <= s.upAt + 2000 && next.at >= s.at);
    if (prev.attempt === next.attempt && undone) return "claim undone by a Postgres immediate restart";
    return "unexplained";
  };

  /** @type {Record<string, number>} */
  const rerunTasks = {};
  /** @type {unknown[]} */
  const badReruns = [];
  /** @type {unknown[]} */
  const explainedReruns = [];
  const rowById = new Map(rows.map((r) => [r.id, r]));
  let runMoreThanOnce = 0;
  for (const [task, rs] of runsOf) {
    if (rs.length < 2) continue;
    /** @type {RerunClass[]} */
    const classes = [];
    for (let i = 1; i < rs.length; i++)
      classes.push(classify(/** @type {Run} */ (rs[i - 1]), /** @type {Run} */ (rs[i])));
    const worst = SEVERITY.find((c) => classes.includes(/** @type {RerunClass} */ (c))) ?? "unexplained";
    if (worst === "retry after its failure") continue; // a retry, not a second run of one attempt
    runMoreThanOnce++;
    rerunTasks[worst] = (rerunTasks[worst] ?? 0) + 1;
    if (ALLOWED.has(worst)) continue;
    const row = rowById.get(task);
    const first = /** @type {Run} */ (rs[0]);
    const item = {
      task,
      k: row?.k,
      name: row?.name,
      status: row?.status,
      attempt: row?.attempt,
      why: classes,
      runs: rs.map(show),
      completionsDiscarded: discarded.get(task) ?? [],
      nearestEvent: nearest(first.at),
    };
    (EXPLAINED.has(worst) ? explainedReruns : badReruns).push(item);
  }
  fail("run more than once, not explained by a kill -9 of the worker running it", badReruns);

  // --- FAILED tasks: each must have run, and have failed for a reason the run accounts for
  /** @type {Record<string, number>} */
  const failedWhy = {};
  /** @type {unknown[]} */
  const neverRan = [];
  /** @type {unknown[]} */
  const badFailures = [];
  let failedNoLedgerRow = 0;
  for (const r of rows) {
    if (r.status !== "FAILED") continue;
    const rs = runsOf.get(r.id) ?? [];
    if (!rs.some((x) => x.ledger)) failedNoLedgerRow++;
    const last = rs[rs.length - 1];
    const item = {
      task: r.id,
      k: r.k,
      name: r.name,
      error: r.error?.slice(0, 160),
      attempt: r.attempt,
      retryCount: r.retry_count,
      maxRetries: r.max_retries,
      runs: rs.map(show),
      sweptAs: sweptAs.get(r.id) ?? [],
      ...(last ? { nearestEvent: nearest(last.at) } : { lastWorker: lastWorker(r) }),
    };
    if (!last) {
      neverRan.push(item);
      failedWhy["never ran"] = (failedWhy["never ran"] ?? 0) + 1;
      continue;
    }
    let why;
    if (
      /^Error: flaky task \d+: fails on its first attempt/.test(r.error ?? "") ||
      /flaky task \d+: fails/.test(r.error ?? "")
    ) {
      why = "threw, no retries left";
    } else if (/^(WorkerLostError: )?worker lost/.test(r.error ?? "")) {
      const k = killedAt.get(last.pid);
      why = k !== undefined && k >= last.at ? "worker lost after a kill -9" : "worker lost, its worker not killed";
    } else {
      why = "other error";
    }
    failedWhy[why] = (failedWhy[why] ?? 0) + 1;
    if (why === "worker lost, its worker not killed" || why === "other error") badFailures.push(item);
  }
  fail("FAILED without ever running", neverRan);
  fail("FAILED for a reason the chaos does not account for", badFailures);

  // --- retries charged for runs that never were: every charge (retry_count, and the final one of a FAILED task)
  // needs a run that failed, was killed, or ended on a process killed before its outcome may have been written
  /** @type {unknown[]} */
  const chargedWithoutRun = [];
  for (const r of rows) {
    const rs = runsOf.get(r.id) ?? [];
    const charges = r.retry_count + (r.status === "FAILED" ? 1 : 0);
    const chargeable = rs.filter((x) => {
      if (x.outcome !== "ok") return true;
      const k = killedAt.get(x.pid) ?? crashedAt.get(x.pid);
      return k !== undefined && x.endAt !== null && k >= x.endAt;
    }).length;
    if (charges > chargeable) {
      chargedWithoutRun.push({
        task: r.id,
        k: r.k,
        name: r.name,
        status: r.status,
        error: r.error?.slice(0, 120),
        retryCount: r.retry_count,
        attempt: r.attempt,
        charges,
        chargeableRuns: chargeable,
        runs: rs.map(show),
        sweptAs: sweptAs.get(r.id) ?? [],
      });
    }
  }

  // --- the graceful shutdown: every task the SIGTERMed worker was running must finish before it exits in time
  /** @type {unknown[]} */
  const sigterms = [];
  /** @type {unknown[]} */
  const badTerms = [];
  for (const [pid, at] of termAt) {
    const exit = events.find((e) => e.kind === "worker-exit" && e.pid === pid);
    const running = [...runs.values()].filter(
      (r) => r.pid === pid && r.at <= at && (r.endAt === null || r.endAt >= at),
    );
    const drained = running.filter((r) => r.outcome === "ok");
    const fig = {
      pid,
      at: rel(at),
      runningAtSigterm: running.length,
      drained: drained.length,
      exitCode: exit?.detail?.code ?? null,
      exitAfterMs: exit ? exit.at - at : null,
    };
    sigterms.push(fig);
    const inTime = exit && exit.at - at <= shutdownTimeout * 1000 + 5000;
    if (!inTime || fig.exitCode !== 0 || drained.length !== running.length) {
      badTerms.push({ ...fig, runs: running.map(show) });
    }
  }
  fail("SIGTERM: the worker did not finish its running tasks and exit 0 within --shutdown-timeout", badTerms);

  // --- a handler with no end must have died with its process
  /** @type {Map<number, number>} */
  const exitAt = new Map();
  for (const e of events) if (e.kind === "worker-exit" && e.pid) exitAt.set(e.pid, e.at);
  fail(
    "a handler that never ended on a worker the run did not kill",
    [...runs.values()]
      .filter((r) => r.traced && r.outcome === null && !killedAt.has(r.pid) && !crashedAt.has(r.pid))
      .map(show),
  );

  // --- whether the chaos met work in flight: handlers running at each event
  /** @param {number} t */
  const runningAt = (t) => {
    let n = 0;
    for (const r of runs.values()) {
      const until = r.endAt ?? exitAt.get(r.pid) ?? Infinity;
      if (r.at <= t && until > t) n++;
    }
    return n;
  };
  const met = chaos
    .filter((e) => e.kind !== "worker-exit" && e.kind !== "pg-start" && e.kind !== "redis-start")
    .map((e) => ({ t: rel(e.at), kind: e.kind, running: runningAt(e.at) }));
  const counts = met.map((m) => m.running).sort((a, b) => a - b);
  const runningAtChaos = {
    events: met.length,
    min: counts[0] ?? 0,
    median: counts[Math.floor(counts.length / 2)] ?? 0,
    max: counts[counts.length - 1] ?? 0,
    byEvent: met,
  };

  // --- exits the run did not cause. A worker that cannot reach Postgres while it starts exits 1 with one line
  // (the CLI's documented behaviour; its supervisor starts it again): expected while Postgres is down. Any other
  // exit is a failure.
  /** @type {[number, number][]} */
  const pgDown = [];
  for (const e of events) {
    if (e.kind === "pg-stop") pgDown.push([e.at, Infinity]);
    const last = pgDown[pgDown.length - 1];
    if (e.kind === "pg-start" && last) last[1] = e.at;
  }
  const logOf = new Map(workerLogs.map((w) => [w.pid, w.text]));
  const crashes = events.filter((e) => e.kind === "worker-exit" && e.detail?.expected === false);
  /** @type {unknown[]} */
  const refusedToStart = [];
  /** @type {unknown[]} */
  const exitedOnItsOwn = [];
  for (const e of crashes) {
    const log = logOf.get(/** @type {number} */ (e.pid)) ?? "";
    const item = { pid: e.pid, at: rel(e.at), ...e.detail, logTail: log.trim().split("\n").slice(-3) };
    const whileDown = pgDown.some(([from, to]) => e.at >= from && e.at <= to + 1000);
    const neverStarted = !log.includes("worker started");
    if (e.detail?.code === 1 && whileDown && neverStarted && log.includes("cannot connect to Postgres"))
      refusedToStart.push(item);
    else exitedOnItsOwn.push(item);
  }
  fail("a worker process exited on its own", exitedOnItsOwn);

  // --- what the workers said about sweeps (reading logs is fine for a report; nothing above depends on it)
  const sweeps = { sweeps: 0, requeued: 0, handedBack: 0, failed: 0 };
  let shutdownHandBacks = 0;
  let bufferHandBacks = 0;
  let reclaimedSkipped = 0;
  for (const { text } of workerLogs) {
    for (const line of text.split("\n")) {
      if (line.includes("swept tasks of lost workers")) {
        const json = line.slice(line.indexOf("{"));
        try {
          const f = JSON.parse(json);
          sweeps.sweeps++;
          sweeps.requeued += f.requeued?.length ?? 0;
          sweeps.handedBack += f.handedBack?.length ?? 0;
          sweeps.failed += f.failed?.length ?? 0;
        } catch {
          // a line cut short by kill -9
        }
      }
      if (line.includes("shutdown timeout: handing unfinished tasks back")) shutdownHandBacks++;
      if (line.includes("prefetched tasks may have been swept")) bufferHandBacks++;
      if (line.includes("claimed a task this worker is already running")) reclaimedSkipped++;
    }
  }

  // How long a worker process took from spawn to its "worker started" line: on a loaded machine this is seconds,
  // which sets how much work a restarted worker does before the next kill.
  /** @type {number[]} */
  const startups = [];
  for (const e of events) {
    if (e.kind !== "worker-start") continue;
    const line = (logOf.get(/** @type {number} */ (e.pid)) ?? "").split("\n").find((l) => l.includes("worker started"));
    // Workers log JSON (pino, its time as ISO text); a pretty or console line starts with the time.
    if (line) startups.push(Date.parse(line.startsWith("{") ? JSON.parse(line).time : line.slice(0, 24)) - e.at);
  }
  startups.sort((a, b) => a - b);
  const workerStartup = {
    started: startups.length,
    spawned: events.filter((e) => e.kind === "worker-start").length,
    medianSeconds: Math.round((startups[Math.floor(startups.length / 2)] ?? 0) / 100) / 10,
    maxSeconds: Math.round((startups[startups.length - 1] ?? 0) / 100) / 10,
  };

  const allRuns = [...runs.values()];
  const figures = {
    tasks: rows.length,
    enqueued: specs.length,
    byStatus,
    lost: lost.length,
    stuck: stuck.length,
    failed: failedWhy,
    failedNeverRan: neverRan.length,
    failedWithoutLedgerRow: failedNoLedgerRow,
    runs: {
      total: allRuns.length,
      inLedger: allRuns.filter((r) => r.ledger).length,
      tracedNotInLedger: allRuns.filter((r) => !r.ledger).length,
      tracedNotInLedgerOnAKilledWorker: allRuns.filter((r) => !r.ledger && killedAt.has(r.pid)).length,
      inLedgerNotTraced: ledgerOnly,
      killedMidRun: allRuns.filter((r) => r.outcome === null).length,
    },
    chargedWithoutRun: chargedWithoutRun.length,
    runningAtChaos,
    runMoreThanOnce,
    reruns: rerunTasks,
    sigterms,
    workersRefusedToStartWhilePostgresDown: refusedToStart.length,
    workerStartup,
    workerLogs: { ...sweeps, shutdownHandBacks, bufferHandBacks, reclaimedSkipped },
  };
  return { figures, violations, explainedReruns, chargedWithoutRun };
}
