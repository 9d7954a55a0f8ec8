// The operator page: one EventSource (/events) drives every figure; previews are <img>
// fetches of /previews/<camera>.jpg, asked only when the stream names a new one and the
// last has loaded (never more than one in flight per camera). Controls POST the API routes.
"use strict";

const $ = (id) => document.getElementById(id);
const pct = (x) => (x == null ? "-" : (100 * x).toFixed(1) + " %");
const num = (x, digits) => (x == null ? "-" : Number(x).toFixed(digits));
const cams = {};  // camera -> {card, img, loading, shown, wanted}

function setText(el, value) { if (el.textContent !== value) el.textContent = value; }
function text(id, value) { setText($(id), value); }

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

const drawn = {};  // element id -> what it was last drawn from: unchanged, not redrawn

function changed(id, data) {
  const key = JSON.stringify(data);
  if (drawn[id] === key) return false;
  drawn[id] = key;
  return true;
}

// A table body redrawn only when its rows changed; null when they did not.
function fill(tbodyId, rows, columns, empty) {
  if (!changed(tbodyId, rows)) return null;
  const body = $(tbodyId);
  body.textContent = "";
  if (!rows.length) {
    const tr = body.insertRow();
    const td = cell(tr, empty, "none");
    td.colSpan = columns;
  }
  return body;
}

function renderHeader(s) {
  text("station", s.station_id);
  text("session", s.session_id);
  const state = $("state");
  text("state", s.paused && s.state !== "paused" ? s.state + " (pausing)" : s.state);
  state.className = "state " + s.state;
  text("mode", s.mode);
  const d = s.disk;
  text("disk", d.free_gb == null ? "-" : `${num(d.free_gb, 1)} GB (guard ${d.guard_gb} GB)`);
  text("lag", `${num(s.pipeline_lag_s, 2)} s`);
}

function renderAlarms(a) {
  if (!changed("alarms", a)) return;
  const active = $("alarms-active");
  active.textContent = "";
  for (const alarm of a.active) {
    const li = document.createElement("li");
    li.className = "alarm " + alarm.kind;
    li.dataset.key = alarm.key;
    li.textContent = `raised ${new Date(alarm.raised_at * 1000).toLocaleTimeString()}: ${alarm.message}`;
    active.appendChild(li);
  }
  if (!a.active.length) active.innerHTML = '<li class="none">none</li>';
  $("alarms").classList.toggle("raised", a.active.length > 0);
  const cleared = $("alarms-cleared");
  cleared.textContent = "";
  for (const alarm of a.cleared) {
    const li = document.createElement("li");
    li.dataset.key = alarm.key;
    const at = (t) => new Date(t * 1000).toLocaleTimeString();
    li.textContent = `raised ${at(alarm.raised_at)}, cleared ${at(alarm.cleared_at)}: ${alarm.message}`;
    cleared.appendChild(li);
  }
}

function renderEpisode(s) {
  text("task", s.task);
  const e = s.episode;
  text("episode-id", e ? e.episode_id : "none recording");
  text("episode-number", e ? String(e.number) : "-");
  text("elapsed", e ? `${num(e.elapsed_s, 1)} s of ${num(e.duration_s, 1)} s` : "-");
  text("ending", e && e.ending ? e.ending + " requested" : "-");
  const last = s.last_episode;
  text("last-outcome", last ? `${last.outcome} (${last.episode_id}, efficiency ${pct(last.efficiency)})` : "-");
  const counts = Object.entries(s.episodes).map(([k, v]) => `${k} ${v}`).join(", ");
  text("episode-counts", counts || "none yet");
}

function renderEfficiency(f) {
  text("eff", pct(f.efficiency));
  text("avail", pct(f.availability));
  text("perf", pct(f.performance));
  text("qual", pct(f.quality));
  text("scheduled", `${num(f.scheduled_s, 1)} s`);
  text("recording", `${num(f.recording_s, 1)} s`);
  const body = fill("losses", f.top_losses, 4, "none");
  if (body) for (const l of f.top_losses) {
    const tr = body.insertRow();
    cell(tr, l.factor);
    cell(tr, l.cause);
    cell(tr, l.unit === "s" ? `${num(l.amount, 2)} s` : `${l.amount} samples`);
    cell(tr, pct(l.share));
  }
}

function camera(name) {
  if (cams[name]) return cams[name];
  const card = document.createElement("figure");
  card.className = "camera";
  card.id = "camera-" + name;
  card.innerHTML = '<img alt=""><figcaption><div class="name"></div>' +
    '<div class="line rate"></div><div class="line age"></div><div class="line recent-flags"></div>' +
    '<div class="line flags dim"></div></figcaption>';
  card.querySelector(".name").textContent = name;
  card.querySelector("img").alt = "latest frame of " + name;
  $("cameras").appendChild(card);
  const c = { card, img: card.querySelector("img"), loading: false, shown: 0, wanted: 0 };
  c.img.addEventListener("load", () => { c.loading = false; c.img.dataset.seq = c.loadingSeq; askPreview(name); });
  c.img.addEventListener("error", () => { c.loading = false; });
  cams[name] = c;
  return c;
}

function askPreview(name) {
  const c = cams[name];
  if (c.loading || c.wanted <= c.shown) return;
  c.loading = true;
  c.loadingSeq = c.shown = c.wanted;
  c.img.src = `/previews/${encodeURIComponent(name)}.jpg?seq=${c.wanted}`;
}

// The quality flags raised over the camera's ticks written in the last seconds.
function recentFlags(r, windowS) {
  const head = `last ${num(windowS, 0)} s: `;
  if (!r || !r.ticks) return head + "no ticks written (not recording)";
  const raised = Object.entries(r.flagged).filter(([, n]) => n > 0);
  if (!raised.length) return head + `no flags in ${r.ticks} ticks`;
  return head + raised.map(([k, n]) => `${k} ${n}`).join(", ") + ` of ${r.ticks} ticks`;
}

function renderCameras(s) {
  for (const st of s.streams.filter((x) => x.kind === "camera")) {
    const c = camera(st.name);
    const rate = c.card.querySelector(".rate");
    rate.textContent = `rate ${num(st.rate_hz, 1)} Hz of ${num(st.nominal_hz, 0)} Hz nominal`;
    rate.className = "line rate " + (st.connected ? "" : "bad");
    const p = s.previews[st.name];
    c.card.querySelector(".age").textContent = p
      ? `preview ${p.width}x${p.height}, frame age ${num(p.age_s, 1)} s` : "preview: waiting";
    const recent = c.card.querySelector(".recent-flags");
    setText(recent, recentFlags(st.window, s.window_s));
    const raised = st.window && Object.values(st.window.flagged).some((n) => n > 0);
    recent.className = "line recent-flags " + (raised ? "warn" : "");
    const flags = Object.entries(st.flags).map(([k, v]) => `${k} ${v}`).join(", ");
    c.card.querySelector(".flags").textContent = "flagged samples this session: " + (flags || "none");
    if (p) { c.wanted = p.seq; askPreview(st.name); }
  }
}

function renderStreams(s) {
  // rows stay (one per stream, made once); only their texts change
  const body = $("streams");
  for (const st of s.streams) {
    let tr = $("stream-" + st.name);
    if (!tr) {
      tr = body.insertRow();
      tr.id = "stream-" + st.name;
      for (const cls of ["", "", "num rate", "num", "num", "num dt", "num", "device"]) cell(tr, "", cls);
      tr.cells[0].textContent = st.name;
    }
    const low = st.nominal_hz && st.rate_hz < 0.9 * st.nominal_hz;
    const r = st.window;
    const values = [st.name, st.kind, num(st.rate_hz, 1), num(st.nominal_hz, 0),
      String(st.dropped), r && r.ticks ? num(r.dt_p99_ms, 2) : "-", num(st.last_sample_age_s, 2),
      st.connected ? "connected" : `reconnecting (${num(st.disconnected_s, 1)} s down)`];
    values.forEach((v, i) => setText(tr.cells[i], v));
    tr.cells[2].className = "num rate " + (low ? "warn" : "");
    tr.cells[5].title = r && r.ticks ? `over ${r.ticks} ticks` : "no ticks written in the window";
    tr.cells[7].className = "device " + (st.connected ? "ok" : "bad");
  }
  for (const el of document.querySelectorAll(".recent-s")) setText(el, num(s.window_s, 0));
}

function renderRecent(s) {
  const body = fill("recent", s.recent, 6, "none yet");
  if (body) for (const e of s.recent) {
    const tr = body.insertRow();
    cell(tr, e.episode_id);
    cell(tr, e.outcome, e.outcome === "success" ? "ok" : "warn");
    cell(tr, pct(e.efficiency), "num");
    cell(tr, num(e.recording_s, 1), "num");
    cell(tr, e.reason || "");
    const a = document.createElement("a");
    a.href = e.download;
    a.textContent = "download";
    a.setAttribute("download", e.episode_id + ".h5");
    cell(tr, "").appendChild(a);
  }
}

function render(s) {
  renderHeader(s);
  renderAlarms(s.alarms);
  renderEpisode(s);
  renderEfficiency(s.efficiency);
  renderCameras(s);
  renderStreams(s);
  renderRecent(s);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function command(path, body) {
  const out = $("command-result");
  out.className = "result";
  out.textContent = `${path} ...`;
  try {
    const response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}), credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.ok) {
      out.textContent = `${answer.accepted}: accepted (state ${answer.state})`;
    } else {
      out.className = "result error";
      out.textContent = `${path}: ${answer.error}`;
    }
  } catch (err) {
    out.className = "result error";
    out.textContent = `${path}: the station did not answer (${err})`;
  }
}

for (const button of document.querySelectorAll(".controls button[data-path]")) {
  button.addEventListener("click", () => command(button.dataset.path));
}
$("btn-reject").addEventListener("click", () => {
  $("reject-form").hidden = false;
  $("reject-reason").focus();
});
$("reject-cancel").addEventListener("click", () => { $("reject-form").hidden = true; });
$("reject-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = $("reject-reason").value.trim();
  if (!reason) {
    const out = $("command-result");
    out.className = "result error";
    out.textContent = "a reason is needed to reject an episode";
    return;
  }
  await command("/episodes/reject", { reason });
  $("reject-form").hidden = true;
  $("reject-reason").value = "";
});

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => { text("link", "live"); $("link").className = "ok"; });
  source.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
  source.addEventListener("error", () => {
    // EventSource retries by itself (the server's `retry`); say so meanwhile.
    text("link", "reconnecting");
    $("link").className = "bad";
  });
}
connect();
