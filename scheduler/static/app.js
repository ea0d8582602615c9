// The live parts of the pages. Every page reads without this script.
//
// - A table with `data-live-jobs="1,2,3"` (the job list, a job's entries): every
//   500 ms, GET /live/jobs?ids=... and write each job's status into
//   `#job-<id> [data-field=status]` (and `#job-status` on a job page), its entry counts
//   into `#job-<id> [data-field=counts]`, and each entry's status into
//   `#entry-<id> [data-field=status]`: the text, and the class `status-<status>`.
// - A `<pre class="live-log" data-entry data-file data-offset>`: every 500 ms while the
//   entry runs, GET /live/log/<entry>?file=&offset= and append the new text.
"use strict";

const POLL_MS = 500;

function statusClass(status) {
  return "status-" + String(status).toLowerCase().replace(/[^a-z0-9]/g, "-");
}

function setStatus(cell, status) {
  if (!cell || cell.textContent === status) {
    return;
  }
  cell.textContent = status;
  for (const name of Array.from(cell.classList)) {
    if (name.startsWith("status-")) {
      cell.classList.remove(name);
    }
  }
  cell.classList.add("status", statusClass(status));
}

const ENTRY_ORDER = ["Queued", "Pending", "Starting", "Running", "Gathering", "Completed", "Failed", "Aborted"];

function countsText(counts) {
  return ENTRY_ORDER.filter((s) => counts[s] > 0).map((s) => counts[s] + " " + s).join(", ");
}

const FINAL = ["Completed", "Failed", "Aborted"];

function followJobs(table) {
  const ids = (table.dataset.liveJobs || "").split(",").filter((id) => id !== "");
  if (ids.length === 0) {
    return;
  }
  let timer = null;
  const poll = async () => {
    let allFinal = true;
    try {
      const answer = await fetch("/live/jobs?ids=" + ids.join(","), { credentials: "same-origin" });
      if (answer.ok) {
        const body = await answer.json();
        for (const job of body.jobs) {
          const row = document.getElementById("job-" + job.id);
          if (row) {
            setStatus(row.querySelector("[data-field=status]"), job.status);
            const counts = row.querySelector("[data-field=counts]");
            if (counts) {
              counts.textContent = countsText(job.counts);
            }
          }
          const heading = document.getElementById("job-status");
          if (heading && heading.dataset.job === String(job.id)) {
            setStatus(heading, job.status);
          }
          for (const [entry, status] of Object.entries(job.entries)) {
            const entryRow = document.getElementById("entry-" + entry);
            if (entryRow) {
              setStatus(entryRow.querySelector("[data-field=status]"), status);
            }
          }
          allFinal = allFinal && FINAL.includes(job.status);
        }
      }
    } catch (error) {
      allFinal = false; // The scheduler may be restarting: keep asking.
    }
    // A page of finished jobs changes no more; one with a job in flight is followed.
    timer = allFinal ? null : setTimeout(poll, POLL_MS);
  };
  timer = setTimeout(poll, POLL_MS);
  return timer;
}

function followLog(pre) {
  const entry = pre.dataset.entry;
  const file = pre.dataset.file;
  const state = document.getElementById("log-" + entry + "-state");
  const poll = async () => {
    const offset = pre.dataset.offset || "0";
    let again = true;
    try {
      const url = "/live/log/" + encodeURIComponent(entry) + "?file=" + encodeURIComponent(file) + "&offset=" + encodeURIComponent(offset);
      const answer = await fetch(url, { credentials: "same-origin" });
      if (answer.ok) {
        const body = await answer.json();
        if (body.data) {
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(document.createTextNode(body.data));
          if (atBottom) {
            pre.scrollTop = pre.scrollHeight;
          }
        }
        pre.dataset.offset = String(body.offset);
        again = body.running || body.data !== "";
      } else {
        const body = await answer.json().catch(() => ({}));
        if (state) {
          state.textContent = "The log cannot be followed: " + (body.error || answer.status);
        }
        again = answer.status >= 500;
      }
    } catch (error) {
      again = true;
    }
    if (again) {
      setTimeout(poll, POLL_MS);
    } else if (state && state.textContent.startsWith("Following")) {
      state.textContent = "The entry has finished: its whole results are linked above.";
    }
  };
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("[data-live-jobs]")) {
    followJobs(table);
  }
  for (const pre of document.querySelectorAll("pre.live-log[data-entry]")) {
    followLog(pre);
  }
});
