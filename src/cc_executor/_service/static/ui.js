// The dashboard's script: keeps the server-rendered pages live from the service's public
// endpoints (GET /runs/events, GET /runs/{id}/events, POST /runs, POST /runs/{id}/cancel,
// POST /tasks/{id}/resume).
// Text from runs only ever goes through textContent: it is never parsed as HTML.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

// A block of transcript text keeps at most this many characters (its tail): a run
// streaming for hours must not grow the tab's memory without bound.
const MAX_BLOCK = 100000;
const MAX_BLOCKS = 2000;

async function send(method, url, body) {
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// A block of text that scrolls in its box (ui.css), focusable so a keyboard can scroll it.
function scrollBox(cls) {
  const node = el("pre", cls, "");
  node.tabIndex = 0;
  return node;
}

function statusBadge(status) {
  const name = String(status || "");
  const safe = /^[a-z_]+$/.test(name) ? name : "other";
  return el("span", `status s-${safe}`, name);
}

function utc(stamp) {
  if (typeof stamp !== "number") return "";
  return new Date(stamp * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "";
}

// ---------------------------------------------------------------- buttons with data-post

for (const button of document.querySelectorAll("button[data-post]")) {
  button.addEventListener("click", async () => {
    await send("POST", button.dataset.post);
    if (button.dataset.then) window.location.assign(button.dataset.then);
  });
}

// ---------------------------------------------------------------- the run list

function runCells(run) {
  const started = run.started_at || run.created_at;
  let duration = run.duration_s;
  if (duration == null && run.ended_at && run.started_at) duration = run.ended_at - run.started_at;
  const tokens =
    typeof run.input_tokens === "number" || typeof run.output_tokens === "number"
      ? `${run.input_tokens || 0} / ${run.output_tokens || 0}`
      : "";
  const link = el("a", null, String(run.prompt_preview || run.run_id).slice(0, 120));
  link.href = `/ui/runs/${encodeURIComponent(run.run_id)}`;
  return {
    status: statusBadge(run.status),
    prompt: link,
    agent: run.agent || run.kind || "",
    model: run.model || "",
    started: utc(started),
    duration: fixed(duration, 1),
    cost: fixed(run.cost_usd, 4),
    tokens,
    exit: run.exit_code ?? "",
  };
}

function fillRow(row, run) {
  const cells = runCells(run);
  for (const td of row.querySelectorAll("td[data-col]")) {
    const value = cells[td.dataset.col];
    td.replaceChildren();
    if (value instanceof Node) td.append(value);
    else td.textContent = String(value);
  }
}

function newRow(run) {
  const row = document.createElement("tr");
  row.dataset.runId = run.run_id;
  const numeric = new Set(["duration", "cost", "tokens", "exit"]);
  for (const col of ["status", "prompt", "agent", "model", "started", "duration", "cost", "tokens", "exit"]) {
    const td = document.createElement("td");
    td.dataset.col = col;
    if (numeric.has(col)) td.className = "num";
    row.append(td);
  }
  fillRow(row, run);
  return row;
}

const runTable = document.getElementById("runs");
if (runTable) {
  const body = runTable.tBodies[0];
  const note = document.getElementById("live-note");
  const addNew = runTable.dataset.live === "1";
  const filtered = runTable.dataset.filtered === "1";
  // The service's own feed with the page's filters: "run" for a run that matches them,
  // "leave" for one that does not (or no longer does).
  const feed = new EventSource(runTable.dataset.feed || "/runs/events");
  const rowOf = (id) => [...body.rows].find((r) => r.dataset.runId === id);
  // Newest first, as the server lists them: a run that comes to match (it ended ok under
  // a status filter) goes where its key puts it, not always at the top.
  const place = (row, run) => {
    const key = Number(run.created_at || run.started_at || 0);
    row.dataset.key = String(key);
    const after = [...body.rows].find((r) => Number(r.dataset.key || 0) < key);
    body.insertBefore(row, after || null);
    document.getElementById("no-runs")?.remove();
  };
  feed.addEventListener("run", (message) => {
    const run = JSON.parse(message.data).run;
    const existing = rowOf(run.run_id);
    if (existing) {
      fillRow(existing, run);
      existing.classList.remove("left");
    } else if (addNew) place(newRow(run), run);
  });
  feed.addEventListener("leave", (message) => {
    // A shown run that no longer matches stays where it is, marked, with its new line:
    // a row does not vanish under the reader's pointer.
    const run = JSON.parse(message.data).run;
    const existing = rowOf(run.run_id);
    if (!existing) return;
    fillRow(existing, run);
    existing.classList.add("left");
    const status = existing.querySelector('td[data-col="status"]');
    status.append(el("span", "left-note", "no longer matches"));
  });
  feed.addEventListener("gap", () => window.location.reload());
  feed.addEventListener("open", () => {
    if (!addNew) {
      note.textContent = "Live: these runs change as they happen (new ones appear on the first page).";
    } else if (filtered) {
      note.textContent =
        "Live: runs that match appear and change as they happen; those that stop matching are marked.";
    } else note.textContent = "Live: runs appear and change as they happen.";
  });
  feed.addEventListener("error", () => {
    note.textContent = "Live updates interrupted; reconnecting.";
  });
}

// ---------------------------------------------------------------- one run

function appendCapped(node, text) {
  const joined = node.textContent + text;
  node.textContent = joined.length > MAX_BLOCK ? joined.slice(joined.length - MAX_BLOCK) : joined;
}

// Streamed text: the pieces are kept (the last MAX_BLOCK characters of them) and shown at
// most once a frame, so that replaying a 20 MB answer's thousands of deltas costs one
// copy of the tail per frame, not one per delta.
class TextBlock {
  constructor(node) {
    this.node = node;
    this.parts = [];
    this.first = 0;
    this.length = 0;
    this.scheduled = false;
  }

  append(text) {
    this.parts.push(text);
    this.length += text.length;
    while (this.length - this.parts[this.first].length >= MAX_BLOCK) {
      this.length -= this.parts[this.first].length;
      this.first += 1;
    }
    if (this.first > 1024 && this.first * 2 > this.parts.length) {
      this.parts = this.parts.slice(this.first);
      this.first = 0;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.show());
    }
  }

  show() {
    this.scheduled = false;
    // The block scrolls (ui.css): it follows the new text unless the reader scrolled up.
    const node = this.node;
    const following = node.scrollTop + node.clientHeight >= node.scrollHeight - 8;
    const text = this.parts.slice(this.first).join("");
    node.textContent = text.length > MAX_BLOCK ? text.slice(text.length - MAX_BLOCK) : text;
    if (following) node.scrollTop = node.scrollHeight;
  }
}

function jsonText(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

const runSection = document.getElementById("run");
if (runSection) {
  const runId = runSection.dataset.runId;
  const transcript = document.getElementById("transcript");
  const statusHolder = document.getElementById("run-status");
  const controlError = document.getElementById("control-error");
  const tools = new Map();
  const taskStarts = new Map();
  const heartbeatLine = document.getElementById("heartbeat");
  const outputs = {};
  let textBlock = null;

  const add = (node) => {
    transcript.append(node);
    while (transcript.childElementCount > MAX_BLOCKS) transcript.firstElementChild.remove();
    return node;
  };
  const setStatus = (status) => statusHolder.replaceChildren(statusBadge(status));
  const setButtons = (live) => {
    for (const b of runSection.querySelectorAll("button[data-action]")) b.disabled = !live;
  };

  // Tool calls waiting for a decision: the list comes from GET /runs/{id}/permissions
  // (it has the wall-clock time of each request), emptied by permission_decision events.
  const pendingBox = document.getElementById("permissions");
  const pendingList = document.getElementById("pending");
  const canDecide = pendingList?.dataset.decide === "1";
  const showPending = () => {
    if (pendingBox) pendingBox.hidden = pendingList.childElementCount === 0;
  };
  const timeLeft = (item) => {
    const left = Math.max(0, Math.round(Number(item.dataset.deadline) - Date.now() / 1000));
    item.querySelector(".time-left").textContent = left > 0 ? `${left} s left` : "timing out";
  };
  const decide = async (item, decision) => {
    controlError.textContent = "";
    for (const b of item.querySelectorAll("button")) b.disabled = true;
    const url = `/runs/${encodeURIComponent(runId)}/permissions/${encodeURIComponent(
      item.dataset.request,
    )}/decision`;
    const reply = await send("POST", url, { decision });
    if (!reply.ok && reply.status !== 404) {
      controlError.textContent = reply.data?.error?.message || `${decision} failed (${reply.status})`;
      for (const b of item.querySelectorAll("button")) b.disabled = false;
      return;
    }
    // Decided (or, 404, decided elsewhere or timed out): it leaves the list.
    item.remove();
    showPending();
  };
  const pendingItem = (request) => {
    const item = el("li", "pending");
    item.dataset.request = request.request_id;
    item.dataset.deadline = String(Date.now() / 1000 + (request.timeout_s || 0));
    item.append(
      // A task list's requests name their task.
      el(
        "p",
        "pending-tool",
        `Tool: ${request.tool_name || "?"}` + (request.task_id ? ` (task ${request.task_id})` : ""),
      ),
      el("pre", "tool-input", jsonText(request.tool_input)),
      el("span", "time-left", ""),
    );
    if (canDecide) {
      const group = el("span", "decide");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", `Decide ${request.tool_name || "the tool call"}`);
      for (const [decision, label] of [["allow", "Allow"], ["deny", "Deny"]]) {
        const button = el("button", `decide-${decision}`, label);
        button.type = "button";
        button.addEventListener("click", () => decide(item, decision));
        group.append(button);
      }
      item.append(group);
    }
    timeLeft(item);
    return item;
  };
  const findPending = (id) => [...(pendingList?.children || [])].find((li) => li.dataset.request === id);
  // The events make and remove the entries (a replay too: every request is followed by its
  // decision, a timeout's included); the REST list gives each its wall-clock deadline.
  const refreshPending = async () => {
    const reply = await send("GET", `/runs/${encodeURIComponent(runId)}/permissions`);
    if (!reply.ok) return;
    for (const request of reply.data.permissions || []) {
      const item = findPending(request.request_id);
      if (!item) continue;
      item.dataset.deadline = String((request.requested_at || 0) + (request.timeout_s || 0));
      timeLeft(item);
    }
  };
  if (pendingList) {
    setInterval(() => {
      for (const item of pendingList.children) timeLeft(item);
    }, 1000);
  }

  const handlers = {
    permission_request(e) {
      if (!pendingList || findPending(e.request_id)) return;
      pendingList.append(pendingItem(e));
      showPending();
      refreshPending();
    },
    permission_decision(e) {
      add(
        el(
          "p",
          e.decision === "allow" ? "note" : "warning",
          `Permission ${e.decision || "?"} for ${e.tool_name || "?"} by ${e.decided_by || "?"}` +
            (e.message ? `: ${e.message}` : ""),
        ),
      );
      findPending(e.request_id)?.remove();
      showPending();
    },
    text_delta(e) {
      if (!textBlock) textBlock = new TextBlock(add(scrollBox("assistant")));
      textBlock.append(e.text || "");
    },
    text(e) {
      // The whole block after its deltas: shown only when no delta came.
      if (!textBlock) new TextBlock(add(scrollBox("assistant"))).append(e.text || "");
      textBlock = null;
    },
    thinking(e) {
      textBlock = null;
      const box = add(el("details", "thinking"));
      box.append(el("summary", null, "Thinking"), el("pre", null, e.text || ""));
    },
    tool_use(e) {
      textBlock = null;
      const box = add(el("details", "tool"));
      box.open = true;
      box.append(el("summary", null, `Tool: ${e.name || "?"} (${e.kind || "other"})`));
      box.append(el("pre", "tool-input", jsonText(e.input)));
      tools.set(e.id, box);
    },
    tool_result(e) {
      const box = tools.get(e.tool_use_id) || add(el("details", "tool"));
      const out = scrollBox(e.is_error ? "tool-result tool-error" : "tool-result");
      appendCapped(out, typeof e.content === "string" ? e.content : jsonText(e.content));
      box.append(out);
    },
    permission_denied(e) {
      add(el("p", "warning", `Permission denied: ${e.tool_name || ""} ${e.message || ""}`));
    },
    api_retry(e) {
      add(el("p", "note", `API retry ${e.attempt ?? ""}/${e.max_retries ?? ""}`));
    },
    retry(e) {
      add(el("p", "note", `Retry: ${e.reason || e.attempt || ""}`));
    },
    warning(e) {
      add(el("p", "warning", `Warning: ${e.message || ""}`));
    },
    heartbeat(e) {
      // One line, rewritten in place: when the last heartbeat came (the run's start plus
      // its elapsed seconds, right in a replay too) and what the run was doing.
      if (!heartbeatLine) return;
      const started = Number(runSection.dataset.started);
      const at = started > 0 ? started + (e.elapsed_s || 0) : Date.now() / 1000;
      heartbeatLine.textContent =
        `Last heartbeat ${utc(at)} UTC: ${fixed(e.elapsed_s, 0)} s in, idle ${fixed(e.idle_s, 0)} s` +
        (e.last_activity ? `; last activity: ${e.last_activity}` : "");
      heartbeatLine.dataset.beats = String(Number(heartbeatLine.dataset.beats || 0) + 1);
      heartbeatLine.hidden = false;
    },
    output(e) {
      // A command's lines: stdout and stderr each in a block of its own.
      const stream = e.stream === "stderr" ? "stderr" : "stdout";
      if (!outputs[stream]) outputs[stream] = new TextBlock(add(scrollBox(`output ${stream}`)));
      outputs[stream].append(`${e.text ?? ""}\n`);
    },
    task_state(e) {
      const safe = /^[a-z_]+$/.test(e.state || "") ? e.state : "other";
      // A task's duration, from its first start to its end: the events' times (t) are
      // the server's monotonic clock, so only their difference means something.
      if (e.state === "running" && !taskStarts.has(e.task_id) && typeof e.t === "number") {
        taskStarts.set(e.task_id, e.t);
      }
      const started = taskStarts.get(e.task_id);
      const ended = !["pending", "running", "retrying"].includes(e.state);
      const seconds = ended && started !== undefined && typeof e.t === "number" ? e.t - started : null;
      for (const node of runSection.querySelectorAll("[data-task]")) {
        if (node.dataset.task !== e.task_id) continue;
        if (node instanceof SVGElement) {
          node.setAttribute("class", `task-node t-${safe}`);
          const tip = node.querySelector("title");
          if (tip) {
            tip.textContent = `${e.task_id}: ${e.state}` + (seconds === null ? "" : `, ${seconds.toFixed(1)} s`);
          }
          continue;
        }
        node.querySelector('[data-col="state"]').replaceChildren(statusBadge(e.state));
        node.querySelector('[data-col="attempt"]').textContent = e.attempt || "";
        node.querySelector('[data-col="cost"]').textContent = fixed(e.cost_usd, 4);
        // A kept task's event (a resume) has no time: the duration shown stays.
        const duration = node.querySelector('[data-col="duration"]');
        if (seconds !== null || !ended) duration.textContent = fixed(seconds, 1);
      }
    },
    started() {
      setStatus("running");
    },
    paused() {
      setStatus("paused");
    },
    resumed() {
      setStatus("running");
    },
    completed(e) {
      setStatus(e.status);
      setButtons(false);
      pendingList?.replaceChildren();
      showPending();
      textBlock = null;
      // Seen live to its end: load the page again for what the server now knows (the
      // answer, cost, tokens, receipts). A page opened after the end only replays.
      if (runSection.dataset.live === "1") window.location.reload();
    },
    gap(e) {
      add(el("p", "note", `Events ${e.missed_from}-${e.missed_to} are no longer kept.`));
    },
  };

  if (runSection.dataset.inMemory === "1" || runSection.dataset.replay === "1") {
    const events = new EventSource(`/runs/${encodeURIComponent(runId)}/events`);
    for (const [name, handle] of Object.entries(handlers)) {
      events.addEventListener(name, (message) => {
        const event = JSON.parse(message.data);
        handle(event);
        // The last event shown: what a test or benchmark compares with the run's last_seq.
        runSection.dataset.seq = message.lastEventId;
      });
    }
    events.addEventListener("completed", () => events.close());
    events.addEventListener("error", () => {
      if (events.readyState === EventSource.CLOSED) return;
      if (runSection.dataset.live !== "1") events.close();
    });
  }

  for (const button of runSection.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", async () => {
      controlError.textContent = "";
      const action = button.dataset.action;
      const reply = await send("POST", `/runs/${encodeURIComponent(runId)}/${action}`);
      if (!reply.ok) {
        controlError.textContent = reply.data?.error?.message || `${action} failed (${reply.status})`;
        return;
      }
      if (action === "pause") setStatus("paused");
      if (action === "resume") setStatus("running");
    });
  }

  // A task list that ended without success runs again under its id: the page loads
  // again to follow the resumed run.
  const resumeList = runSection.querySelector("button[data-resume-list]");
  if (resumeList) {
    resumeList.addEventListener("click", async () => {
      controlError.textContent = "";
      resumeList.disabled = true;
      const reply = await send("POST", `/tasks/${encodeURIComponent(runId)}/resume`, {});
      if (!reply.ok) {
        controlError.textContent = reply.data?.error?.message || `resume failed (${reply.status})`;
        resumeList.disabled = false;
        return;
      }
      window.location.reload();
    });
  }

  // One file's outcome of GET /runs/{id}/verify: its state (ok, altered, missing) and why.
  const verdict = (item) => {
    let text = item.state || "unknown";
    if (item.reason) text += `: ${item.reason}`;
    else if (item.state === "altered" && item.size !== undefined) {
      text += `: ${item.size} bytes now, ${item.recorded_size} recorded; sha256 differs`;
    } else if (item.state === "missing") text += `: ${item.path} is not there`;
    if (item.checked) text += ` (${item.checked})`;
    return text;
  };
  const verify = runSection.querySelector("button[data-verify]");
  if (verify) {
    verify.addEventListener("click", async () => {
      const outcome = document.getElementById("verify-outcome");
      const reply = await send("GET", `/runs/${encodeURIComponent(runId)}/verify`);
      if (!reply.ok) {
        outcome.textContent = reply.data?.error?.message || `verify failed (${reply.status})`;
        return;
      }
      outcome.textContent = reply.data.ok ? "Every receipt matches." : "Some receipts do not match.";
      for (const item of reply.data.artifacts || []) {
        const row = [...runSection.querySelectorAll("tr[data-name]")].find(
          (r) => r.dataset.name === item.name,
        );
        if (row) {
          const cell = row.querySelector('td[data-col="outcome"]');
          cell.textContent = verdict(item);
          cell.dataset.state = item.state || "";
        }
      }
    });
  }
}

// ---------------------------------------------------------------- the fleet (overview)

// One worker's row, as the server renders it (_ui.worker_row): what it runs and its
// health, "ok", "late" (two heartbeats missed) or "lost" (its heartbeat expired).
function workerRow(worker) {
  const row = document.createElement("tr");
  const health = ["ok", "late", "lost"].includes(worker.health) ? worker.health : "other";
  row.dataset.worker = String(worker.worker_id ?? "");
  row.dataset.health = health;
  const cell = (value, col, numeric) => {
    const td = el("td", numeric ? "num" : null, value ?? "");
    if (col) td.dataset.col = col;
    row.append(td);
    return td;
  };
  const name = el("th", null, worker.worker_id ?? "");
  name.scope = "row";
  row.append(name);
  cell("", "health").append(el("span", `health h-${health}`, worker.health || "ok"));
  cell(worker.host);
  cell(worker.pid, null, true);
  cell(`${worker.busy ?? ""} / ${worker.slots ?? ""}`, "busy", true);
  const runs = cell("", "runs");
  for (const [i, runId] of (worker.runs || []).entries()) {
    if (i) runs.append(", ");
    const link = el("a", null, runId);
    link.href = `/ui/runs/${encodeURIComponent(runId)}`;
    runs.append(link);
  }
  cell((worker.agents || []).join(", "));
  cell((worker.queues || []).join(", "));
  cell(worker.version);
  cell(fixed(worker.heartbeat_age_s, 1), "age", true);
  return row;
}

const fleetSection = document.getElementById("fleet");
if (fleetSection) {
  const every = Math.max(1, Number(fleetSection.dataset.poll) || 5) * 1000;
  const note = document.getElementById("fleet-note");
  const refresh = async () => {
    // A hidden tab does not poll; it reads again when shown.
    if (document.hidden) return;
    const reply = await send("GET", "/fleet").catch(() => null);
    if (!reply || !reply.ok) {
      note.textContent = `The fleet does not answer: ${
        reply?.data?.error?.message || "the server did not answer"
      }`;
      return;
    }
    const data = reply.data;
    note.textContent = "";
    const lost = (data.lost || []).length;
    document.getElementById("fleet-summary").textContent =
      `${data.fleet}: ${(data.workers || []).length} live worker(s)` + (lost ? `, ${lost} lost.` : ".");
    const workers = [...(data.workers || []), ...(data.lost || [])];
    document.getElementById("no-workers").hidden = workers.length > 0;
    document.getElementById("workers").tBodies[0].replaceChildren(...workers.map(workerRow));
    const queues = Object.entries(data.queues || {}).map(([name, count]) => {
      const row = document.createElement("tr");
      const head = el("th", null, name);
      head.scope = "row";
      row.append(head, el("td", "num", count.queued ?? ""), el("td", "num", count.running ?? ""));
      return row;
    });
    document.getElementById("queues").tBodies[0].replaceChildren(...queues);
    fleetSection.dataset.polled = String(Number(fleetSection.dataset.polled || 0) + 1);
  };
  // One read at a time: the next is scheduled when this one is done.
  const loop = async () => {
    await refresh();
    setTimeout(loop, every);
  };
  setTimeout(loop, every);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
}

// ---------------------------------------------------------------- start a run

const startForm = document.getElementById("start");
if (startForm) {
  const fields = ["prompt", "cwd", "agent", "model", "allowed_tools", "timeout", "options"];
  const showError = (name, message) => {
    const slot = document.getElementById(`err-${name}`) || document.getElementById("err-form");
    slot.textContent = message;
    const input = document.getElementById(`o-${name}`);
    if (input) {
      // A field inside the closed "More options" section cannot take focus: open it first.
      const section = input.closest("details");
      if (section) section.open = true;
      input.setAttribute("aria-invalid", "true");
      const hint = document.getElementById(`hint-${name}`);
      input.setAttribute("aria-describedby", hint ? `err-${name} hint-${name}` : `err-${name}`);
      input.focus();
    }
  };
  startForm.addEventListener("submit", async (submitEvent) => {
    submitEvent.preventDefault();
    for (const name of [...fields, "form"]) {
      const slot = document.getElementById(`err-${name}`);
      if (slot) slot.textContent = "";
      document.getElementById(`o-${name}`)?.removeAttribute("aria-invalid");
    }
    const value = (name) => document.getElementById(`o-${name}`).value.trim();
    let options = {};
    if (value("options")) {
      try {
        options = JSON.parse(value("options"));
      } catch (error) {
        showError("options", `not valid JSON: ${error.message}`);
        return;
      }
      if (typeof options !== "object" || options === null || Array.isArray(options)) {
        showError("options", "must be a JSON object");
        return;
      }
    }
    const typed = { ...options };
    options.cwd = value("cwd");
    if (value("agent")) options.agent = value("agent");
    if (value("model")) options.model = value("model");
    if (value("allowed_tools")) {
      options.allowed_tools = value("allowed_tools").split(",").map((t) => t.trim()).filter(Boolean);
    }
    if (value("timeout")) {
      const seconds = Number(value("timeout"));
      options.timeout = Number.isFinite(seconds) ? seconds : value("timeout");
    }
    const reply = await send("POST", "/runs", { prompt: value("prompt"), options });
    if (reply.ok) {
      window.location.assign(`/ui/runs/${encodeURIComponent(reply.data.run_id)}`);
      return;
    }
    const message = reply.data?.error?.message || `the server answered ${reply.status}`;
    // The API names the option a check concerns: put the message next to that field.
    const names = (name) => new RegExp(`\\b${name}\\b`).test(message);
    // An option given only in the JSON box has no field of its own: the box is its field.
    // The box is asked first: a misspelt option's message ("cwdd (did you mean cwd?);
    // known: ...") names form fields too, and it belongs beside the box. An option a
    // filled field replaced is that field's.
    const boxOnly = Object.keys(typed).filter((key) => !(fields.includes(key) && value(key)));
    const named = (boxOnly.some(names) ? "options" : undefined) || fields.find(names);
    showError(named || "form", message);
  });
}
