// midway ui: keeps the jobs table and the job page current by polling their JSON endpoint
// once a second. The pages are complete without it; this only refreshes the numbers, and
// the job page's throughput chart when a new checkpoint came.
// Text goes in with textContent only, never as markup; the chart is SVG parsed as XML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const CHART_MS = 2000; // the chart is fetched again at most this often
  const SVG_NS = "http://www.w3.org/2000/svg";

  // The same wording as midway/web/formatting.py and midway.owner.describe_age.
  function count(n) {
    return n === null || n === undefined ? "" : n.toLocaleString("en-US");
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    seconds = Math.max(0, seconds);
    if (seconds < 90) return seconds.toFixed(0) + " s";
    if (seconds < 90 * 60) return (seconds / 60).toFixed(0) + " min";
    if (seconds < 36 * 3600) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " days";
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 1) return "just now";
    return duration(seconds) + " ago";
  }

  function rate(perSecond) {
    if (!perSecond) return "";
    const digits = perSecond < 10 ? 1 : 0;
    return perSecond.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }) + "/s";
  }

  function progressText(row) {
    let text = count(row.processed);
    if (row.total) {
      text += " / " + count(row.total) + " (" + ((100 * row.processed) / row.total).toFixed(0) + "%)";
    }
    return text;
  }

  function partitionsText(row) {
    const done = row.partitions.filter(function (p) {
      return p.status.startsWith("completed");
    }).length;
    return done + "/" + row.partitions.length + " partitions done";
  }

  function checkpointText(row) {
    if (row.partitions) return partitionsText(row);
    if (row.checkpoint === null) return "none";
    return "#" + row.checkpoint.version + " " + age(row.checkpoint_age_seconds);
  }

  function workersText(row) {
    const n = row.workers.length;
    return n + " worker" + (n === 1 ? "" : "s");
  }

  // -- filling the fields of one job ------------------------------------------------------

  function setField(scope, name, text) {
    const el = scope.querySelector('[data-field="' + name + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  }

  function fillCommon(scope, row) {
    const badge = scope.querySelector('[data-field="status"]');
    if (badge) {
      badge.textContent = row.status;
      badge.className = "status status-" + row.status;
    }
    const bar = scope.querySelector('[data-field="bar"]');
    if (bar) {
      // As templates/_macros.html: full once completed, moving while running with no total.
      const finished = row.status.startsWith("completed");
      if (row.total || finished) {
        bar.max = row.total || Math.max(row.processed, 1);
        bar.value = row.processed;
      } else {
        bar.removeAttribute("value");
      }
      bar.hidden = !(row.total || finished || row.status === "running");
      bar.textContent = count(row.processed);
    }
    setField(scope, "progress", progressText(row));
    setField(scope, "rate", rate(row.rate_per_second));
    setField(scope, "eta", duration(row.eta_seconds));
  }

  // -- the jobs table ---------------------------------------------------------------------

  function jobUrl(job) {
    return "/jobs/" + encodeURIComponent(job);
  }

  function cell(tr, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function fieldIn(td, tag, name) {
    const el = document.createElement(tag);
    el.dataset.field = name;
    td.appendChild(el);
    return el;
  }

  function newRow(job) {
    const tr = document.createElement("tr");
    tr.dataset.job = job;
    const link = fieldIn(cell(tr), "a", "link");
    link.href = jobUrl(job);
    link.textContent = job;
    fieldIn(cell(tr), "span", "status");
    const progress = cell(tr, "progress");
    fieldIn(progress, "progress", "bar");
    progress.appendChild(document.createTextNode(" "));
    fieldIn(progress, "span", "progress");
    cell(tr, "num").dataset.field = "failed";
    cell(tr).dataset.field = "checkpoint";
    cell(tr, "num").dataset.field = "rate";
    cell(tr, "num").dataset.field = "eta";
    cell(tr).dataset.field = "owner";
    return tr;
  }

  function fillRow(tr, row) {
    fillCommon(tr, row);
    setField(tr, "failed", row.failed ? count(row.failed) : "");
    setField(tr, "checkpoint", checkpointText(row));
    setField(tr, "owner", row.partitions ? workersText(row) : row.owner || "");
  }

  function showJobs(table, rows) {
    const tbody = table.tBodies[0];
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.job, tr);
    rows.forEach(function (row, index) {
      let tr = existing.get(row.job);
      existing.delete(row.job);
      if (!tr) tr = newRow(row.job);
      fillRow(tr, row);
      if (tbody.rows[index] !== tr) tbody.insertBefore(tr, tbody.rows[index] || null);
    });
    for (const tr of existing.values()) tr.remove();
    const none = document.getElementById("no-jobs");
    const missing = document.getElementById("missing");
    if (rows.length && missing) missing.hidden = true;
    if (none) none.hidden = rows.length > 0 || Boolean(missing && !missing.hidden);
  }

  // -- one job's page ---------------------------------------------------------------------

  function showJob(section, row, status) {
    if (status === 404) {
      document.getElementById("gone").hidden = false;
      return false;
    }
    if (row.status !== section.dataset.status) {
      // Items and runs changed with the status: load the whole page again, unless that
      // would throw away a note being written.
      const draft = document.getElementById("note-text");
      if (!draft || !draft.value.trim()) {
        window.location.reload();
        return false;
      }
      document.getElementById("stale").hidden = false;
    }
    fillCommon(section, row);
    for (const name of ["succeeded", "failed", "skipped", "in_doubt", "waiting"]) {
      setField(section, name, count(row[name]));
    }
    if (row.partitions) {
      setField(section, "checkpoint", partitionsText(row));
      setField(section, "owner", row.workers.join(", ") || "none now");
      showPartitions(row.partitions);
      return true;
    }
    setField(section, "position", JSON.stringify(row.position));
    setField(section, "owner", row.owner || "nobody");
    setField(
      section,
      "checkpoint",
      row.checkpoint === null
        ? "none (the next run starts fresh)"
        : "#" + row.checkpoint.version + " at " + row.updated_at + " (" + age(row.checkpoint_age_seconds) + ")"
    );
    return true;
  }

  // A distributed job's partitions: each row's numbers, the worker holding it and its lease.
  function showPartitions(parts) {
    for (const part of parts) {
      const tr = document.querySelector('tr[data-part="' + CSS.escape(part.job) + '"]');
      if (!tr) continue;
      fillCommon(tr, part);
      setField(tr, "failed", part.failed ? count(part.failed) : "");
      setField(tr, "checkpoint", part.checkpoint ? "#" + part.checkpoint.version : "none");
      setField(tr, "owner", part.owner || "");
      const left = part.lease_expires_in_seconds;
      setField(tr, "lease", part.owner && left !== null ? duration(left) + " left" : "");
    }
  }

  // -- the throughput chart ---------------------------------------------------------------

  function chartUpdater(box) {
    let shown = box.dataset.checkpoint; // the checkpoint the chart on the page was drawn at
    let fetchedAt = Date.now();
    let busy = false;
    return async function (row) {
      // a new checkpoint, or (a distributed job has none of its own) more items done
      const checkpoint = (row.checkpoint ? row.checkpoint.version : "") + ":" + row.processed;
      if (busy || checkpoint === shown || Date.now() - fetchedAt < CHART_MS) return;
      busy = true;
      fetchedAt = Date.now();
      try {
        const response = await fetch(box.dataset.src, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        if (!response.ok) return;
        const body = await response.json();
        shown = checkpoint;
        if (!body.svg) return;
        const svg = new DOMParser().parseFromString(body.svg, "image/svg+xml").documentElement;
        if (svg.namespaceURI !== SVG_NS || svg.localName !== "svg") return;
        for (const script of Array.from(svg.getElementsByTagNameNS(SVG_NS, "script"))) {
          script.remove();
        }
        box.replaceChildren(document.importNode(svg, true));
        box.dataset.checkpoint = checkpoint;
      } catch (error) {
        // the next new checkpoint tries again; the numbers above say whether the server answers
      } finally {
        busy = false;
      }
    };
  }

  // -- polling ----------------------------------------------------------------------------

  function poll(url, apply) {
    const live = document.getElementById("live");
    async function tick() {
      let again = true;
      if (!document.hidden) {
        try {
          const response = await fetch(url, {
            headers: { Accept: "application/json" },
            credentials: "same-origin",
            cache: "no-store",
          });
          if (response.status === 404) {
            again = apply(null, 404);
          } else if (!response.ok) {
            const body = await response.json().catch(function () { return {}; });
            throw new Error(body.error || "HTTP " + response.status);
          } else {
            again = apply(await response.json(), response.status);
          }
          live.textContent = "live · " + new Date().toLocaleTimeString();
          live.className = "live";
        } catch (error) {
          live.textContent = "no answer from the dashboard (" + error.message + "); retrying";
          live.className = "live error";
        }
        live.hidden = false;
      }
      if (again !== false) window.setTimeout(tick, POLL_MS);
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.getElementById("jobs");
    if (table) {
      poll(table.dataset.poll, function (rows) {
        showJobs(table, rows);
        return true;
      });
    }
    const section = document.getElementById("job");
    if (section) {
      const box = document.getElementById("chart");
      const updateChart = box ? chartUpdater(box) : null;
      poll(section.dataset.poll, function (row, status) {
        const again = showJob(section, row, status);
        if (again && updateChart) updateChart(row);
        return again;
      });
    }
  });
})();
