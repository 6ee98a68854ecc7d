// em-backend serve's page: plain DOM code, no libraries, no network beyond this server.
// Views have addresses: #/ (sessions), #/sessions/ID, #/sessions/ID/squares/GS,
// #/agents, #/datasets, #/jobs. Every change in the store arrives on the event stream
// (api/v1/events) and redraws the view shown; states that change with time (stalls,
// silent agents) are redrawn every 30 s as well.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let token = sessionStorage.getItem("em-token") || "";
let agents = new Map(); // agent name -> row of api/v1/agents
let rendering = false, again = false, redrawTimer = null;
let images = false; // whether the server reads EPU's .jpg images (serve --image-root): /health says

function h(tag, attrs, ...kids) {
  const svg = ["svg", "rect", "circle", "g", "title", "text", "line", "image"].includes(tag);
  const e = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch("api/v1/" + path, { headers, cache: "no-store" });
  if (r.status === 401) { askToken(); throw new HttpError(401, "an access token is needed"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new HttpError(r.status, (body.error && body.error.message) || r.statusText);
  return body;
}

// An image EPU wrote (an atlas tile, a square), stretched over the rectangle it covers in
// the map's own pixels. It says when it has loaded (data-loaded, for tests) and hides
// itself when the server cannot give it: the map stays readable without it.
function backdrop(path, x, y, w, hh, attrs) {
  const url = "api/v1/" + path + (token ? "?access_token=" + encodeURIComponent(token) : "");
  return h("image", Object.assign({ class: "backdrop", href: url, x, y, width: w, height: hh,
    preserveAspectRatio: "none", "aria-hidden": "true",
    onload: (e) => { e.target.dataset.loaded = "yes"; },
    onerror: (e) => { e.target.dataset.loaded = "no"; } }, attrs));
}

function askToken() {
  const f = document.getElementById("token-form");
  f.hidden = false;
  document.getElementById("token").focus();
}

function fmtNum(v, digits) {
  if (v === null || v === undefined) return "–";
  return typeof v === "number" ? v.toLocaleString("en", { maximumFractionDigits: digits ?? 1 }) : v;
}

function fmtTime(t) {
  if (!t) return "–";
  const d = new Date(t);
  if (isNaN(d)) return t;
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function stateClass(state) {
  const s = (state || "").split(" ")[0];
  return "state-" + ({ acquiring: "acquiring", stalled: "stalled", finished: "finished",
                       idle: "idle", aborted: "aborted" }[s] || "none");
}

function agentBadge(name) {
  const a = agents.get(name);
  if (!a) return h("span", { class: "badge stopped", title: "no heartbeat from this agent" }, "no heartbeat");
  const kind = a.alive ? "alive" : a.status.startsWith("stopped") ? "stopped" : "silent";
  return h("span", { class: "badge " + kind, "data-agent": name }, a.alive ? "alive" : a.status);
}

// ---- views ----

async function viewSessions(main) {
  const [{ items }, ag] = await Promise.all([api("sessions"), api("agents")]);
  agents = new Map(ag.items.map((a) => [a.agent, a]));
  const stalled = items.filter((s) => s.stalled);
  const silent = ag.items.filter((a) => !a.alive && !a.status.startsWith("stopped"));
  main.append(h("h2", {}, "Sessions"));
  for (const s of stalled)
    main.append(h("p", { class: "banner", role: "alert" },
      `Session ${s.name} (${s.agent}) is stalled: no micrograph since ${fmtTime(s.last_seen)}.`));
  for (const a of silent)
    main.append(h("p", { class: "banner", role: "alert" }, `Agent ${a.agent} is ${a.status}.`));
  if (!items.length) {
    main.append(h("p", { class: "muted" }, "Nothing stored yet: start an agent and `em-backend ingest` or `consume`."));
    return;
  }
  const rows = items.map((s) => h("tr", { "data-session-id": s.session_id ?? "", class: s.stalled ? "stalled" : null },
    h("td", {}, s.session_id ? h("a", { href: `#/sessions/${s.session_id}` }, s.name) : s.name),
    h("td", {}, s.agent, " ", agentBadge(s.agent)),
    h("td", { class: stateClass(s.state), "data-state": s.state }, s.state),
    h("td", { class: "num" }, s.session_id ? `${fmtNum(s.imaged)} / ${fmtNum(s.squares)}` : "–"),
    h("td", { class: "num" }, s.session_id ? `${fmtNum(s.holes_exposed)} / ${fmtNum(s.holes)}` : "–"),
    h("td", { class: "num", "data-micrographs": s.micrographs ?? 0 }, fmtNum(s.micrographs)),
    h("td", { class: "num" }, fmtNum(s.per_hour)),
    h("td", {}, fmtTime(s.last_seen || s.last_acquired))));
  main.append(h("table", { id: "sessions" },
    h("thead", {}, h("tr", {}, h("th", {}, "Session"), h("th", {}, "Microscope (agent)"), h("th", {}, "State"),
      h("th", { class: "num" }, "Squares imaged / listed"), h("th", { class: "num" }, "Holes exposed / listed"),
      h("th", { class: "num" }, "Micrographs"), h("th", { class: "num" }, "Per hour"), h("th", {}, "Last micrograph"))),
    h("tbody", {}, rows)));
}

function squareProgress(q) {
  if (q.state === "Completed") return "done";
  if (q.micrographs > 0 || q.state === "InProgress") return "collecting";
  if (q.has_image || q.holes > 0) return "imaged";
  return "not-imaged";
}

function legend(entries) {
  return h("ul", { class: "legend" }, entries.map(([cls, text]) => h("li", {}, h("i", { class: cls }), text)));
}

async function viewSession(main, id) {
  const [s, sq, tl] = await Promise.all([api(`sessions/${id}`), api(`sessions/${id}/squares`),
                                         api(`sessions/${id}/timeline`)]);
  const tiles = images && s.atlas_id !== null
    ? (await api(`atlases/${s.atlas_id}/tiles`).catch(() => ({ items: [] }))).items : [];
  main.append(h("p", {}, h("a", { href: "#/" }, "Sessions"), " › ", s.name));
  main.append(h("h2", {}, s.name));
  main.append(h("p", {}, h("span", { class: stateClass(s.state), "data-state": s.state }, s.state), " · ",
    `${fmtNum(s.micrographs)} micrographs, ${fmtNum(s.per_hour)} per hour · squares imaged ${fmtNum(s.imaged)} of ${fmtNum(s.squares)} · agent ${s.agent}`));
  const placed = sq.items.filter((q) => q.atlas_x !== null && q.atlas_y !== null);
  const row = h("div", { class: "row" });
  if (placed.length) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const q of placed) {
      const w = q.atlas_width || 20, hh = q.atlas_height || 20;
      x0 = Math.min(x0, q.atlas_x - w / 2); y0 = Math.min(y0, q.atlas_y - hh / 2);
      x1 = Math.max(x1, q.atlas_x + w / 2); y1 = Math.max(y1, q.atlas_y + hh / 2);
    }
    const pad = 20;
    const svg = h("svg", { class: "map", id: "atlas", role: "img", width: 640, height: 640,
      viewBox: `${x0 - pad} ${y0 - pad} ${x1 - x0 + 2 * pad} ${y1 - y0 + 2 * pad}`,
      "aria-label": `Atlas map of ${placed.length} grid squares` });
    if (tiles.length) {
      svg.classList.add("with-image");
      svg.append(h("g", { class: "tiles" }, tiles.map((t) =>
        backdrop(`atlases/${s.atlas_id}/tiles/${t.tile_id}/image`, t.x, t.y, t.width, t.height,
                 { "data-tile-id": t.tile_id }))));
    }
    for (const q of placed) {
      const w = q.atlas_width || 20, hh = q.atlas_height || 20, p = squareProgress(q);
      const r = h("rect", { class: `sq ${p}`, "data-gridsquare-id": q.gridsquare_id, "data-progress": p,
        x: q.atlas_x - w / 2, y: q.atlas_y - hh / 2, width: w, height: hh, tabindex: 0,
        onclick: () => { location.hash = `#/sessions/${id}/squares/${q.gridsquare_id}`; },
        onkeydown: (e) => { if (e.key === "Enter") location.hash = `#/sessions/${id}/squares/${q.gridsquare_id}`; } },
        h("title", {}, `Square ${q.gridsquare_id}: ${p}, ${q.holes} holes, ${q.micrographs} micrographs`));
      svg.append(r);
    }
    row.append(h("div", {}, svg, legend([["sq not-imaged", "not imaged"], ["sq imaged", "imaged"],
      ["sq collecting", "collecting"], ["sq done", "done"]])));
  } else {
    row.append(h("p", { class: "muted" }, "No square of this session has an atlas position yet."));
  }
  // the timeline: micrographs per hour
  const bars = tl.items;
  if (bars.length) {
    const W = 480, H = 160, max = Math.max(...bars.map((b) => b.micrographs)), bw = Math.min(W / bars.length, 40);
    const svg = h("svg", { class: "timeline", id: "timeline", width: W, height: H + 20, role: "img",
      "aria-label": "Micrographs per hour" });
    bars.forEach((b, i) => {
      const bh = max ? (b.micrographs / max) * H : 0;
      svg.append(h("rect", { x: i * bw + 1, y: H - bh, width: Math.max(bw - 2, 1), height: bh },
        h("title", {}, `${b.hour}:00Z: ${b.micrographs} micrographs`)));
    });
    svg.append(h("text", { x: 2, y: H + 14 }, bars[0].hour + ":00Z"));
    svg.append(h("text", { x: W - 2, y: H + 14, "text-anchor": "end" }, bars[bars.length - 1].hour + ":00Z"));
    row.append(h("div", {}, h("h3", {}, "Micrographs per hour"), svg));
  }
  main.append(row);
  const list = sq.items.map((q) => h("tr", { "data-gridsquare-id": q.gridsquare_id },
    h("td", {}, h("a", { href: `#/sessions/${id}/squares/${q.gridsquare_id}` }, q.gridsquare_id)),
    h("td", {}, squareProgress(q)), h("td", {}, q.state || "–"),
    h("td", { class: "num" }, fmtNum(q.holes)), h("td", { class: "num" }, fmtNum(q.micrographs))));
  main.append(h("h3", {}, `Grid squares (${sq.items.length})`),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Square"), h("th", {}, "Progress"), h("th", {}, "EPU state"),
      h("th", { class: "num" }, "Holes"), h("th", { class: "num" }, "Micrographs"))), h("tbody", {}, list)));
}

function holeClass(f) {
  if (f.micrographs > 0) return "acquired";
  if (f.near_grid_bar) return "near-grid-bar";
  if (f.selected) return "selected";
  return "skipped";
}

async function squareMicrographs(id, gs) {
  const out = [];
  let since = ",";
  for (let page = 0; page < 20; page++) {
    const r = await api(`micrographs?session=${id}&square=${gs}&since=${encodeURIComponent(since)}&limit=1000`);
    out.push(...r.items);
    if (r.items.length < 1000) break;
    since = r.next;
  }
  return out;
}

async function viewSquare(main, id, gs) {
  const [s, q, holes, mics] = await Promise.all([api(`sessions/${id}`), api(`sessions/${id}/squares/${gs}`),
    api(`sessions/${id}/squares/${gs}/foilholes`), squareMicrographs(id, gs)]);
  const byHole = new Map();
  for (const m of mics) {
    if (!byHole.has(m.foilhole_id)) byHole.set(m.foilhole_id, []);
    byHole.get(m.foilhole_id).push(m);
  }
  main.append(h("p", {}, h("a", { href: "#/" }, "Sessions"), " › ",
    h("a", { href: `#/sessions/${id}` }, s.name), " › ", `square ${gs}`));
  main.append(h("h2", {}, `Grid square ${gs}`));
  main.append(h("p", {}, `${squareProgress(q)} · EPU state ${q.state || "–"} · ${fmtNum(q.holes)} holes · ${fmtNum(q.micrographs)} micrographs`));
  const info = h("div", { id: "hole-info", "aria-live": "polite" }, h("p", { class: "muted" }, "Point at a hole to see its exposures; click it to list them below."));
  const placed = holes.items.filter((f) => f.x !== null && f.y !== null);
  const row = h("div", { class: "row" });
  const micList = h("div", { id: "micrographs" });
  const showList = (f) => {
    micList.replaceChildren(h("h3", {}, `Micrographs of hole ${f.foilhole_id}`), micTable(byHole.get(f.foilhole_id) || []));
  };
  // the holes' PixelCenter is in the square image's pixels: the image spans 0..width
  const picture = images && q.has_image && q.image_width > 0 && q.image_height > 0;
  if (placed.length || picture) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const f of placed) {
      const r = (f.diameter || 20) / 2;
      x0 = Math.min(x0, f.x - r); y0 = Math.min(y0, f.y - r); x1 = Math.max(x1, f.x + r); y1 = Math.max(y1, f.y + r);
    }
    if (picture) {
      x0 = Math.min(x0, 0); y0 = Math.min(y0, 0);
      x1 = Math.max(x1, q.image_width); y1 = Math.max(y1, q.image_height);
    }
    const pad = 20;
    const svg = h("svg", { class: "map", id: "square", role: "img", width: 640, height: 640,
      viewBox: `${x0 - pad} ${y0 - pad} ${x1 - x0 + 2 * pad} ${y1 - y0 + 2 * pad}`,
      "aria-label": `Map of ${placed.length} foil holes` });
    if (picture) {
      svg.classList.add("with-image");
      svg.append(backdrop(`sessions/${id}/squares/${gs}/image`, 0, 0, q.image_width, q.image_height,
                          { id: "square-image" }));
    }
    for (const f of placed) {
      const cls = holeClass(f), ex = byHole.get(f.foilhole_id) || [];
      const show = () => info.replaceChildren(h("h3", {}, `Hole ${f.foilhole_id}`),
        h("p", {}, `${cls.replace(/-/g, " ")}${f.state ? " · EPU state " + f.state : ""}`),
        ex.length ? micTable(ex) : h("p", { class: "muted" }, "No exposure yet."));
      svg.append(h("circle", { class: `hole ${cls}`, "data-foilhole-id": f.foilhole_id, "data-hole-state": cls,
        cx: f.x, cy: f.y, r: (f.diameter || 20) / 2, tabindex: 0,
        onmouseenter: show, onfocus: show, onclick: () => showList(f),
        onkeydown: (e) => { if (e.key === "Enter") showList(f); } },
        h("title", {}, `Hole ${f.foilhole_id}: ${cls}, ${ex.length} exposures`)));
    }
    row.append(h("div", {}, svg, placed.length ? legend([["hole acquired", "acquired"], ["hole selected", "selected"],
      ["hole near-grid-bar", "near grid bar"], ["hole skipped", "skipped"]])
      : h("p", { class: "muted" }, "No hole of this square has a position yet (its Metadata .dm has not been read).")));
  } else {
    row.append(h("p", { class: "muted" }, "No hole of this square has a position yet (its Metadata .dm has not been read)."));
  }
  row.append(info);
  main.append(row, micList);
  micList.append(h("h3", {}, `Micrographs (${mics.length})`), micTable(mics));
}

function micTable(ms) {
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Acquired"), h("th", {}, "Hole"),
      h("th", { class: "num" }, "Defocus (µm)"), h("th", { class: "num" }, "Dose (e⁻/Å²)"), h("th", {}, "Micrograph"))),
    h("tbody", {}, ms.map((m) => h("tr", { "data-micrograph-uuid": m.micrograph_uuid },
      h("td", {}, fmtTime(m.acquired_at)), h("td", {}, m.foilhole_id ?? "–"),
      h("td", { class: "num" }, m.defocus_m === null ? "–" : fmtNum(m.defocus_m * 1e6, 2)),
      h("td", { class: "num" }, m.dose === null ? "–" : fmtNum(m.dose * 1e-20, 1)),
      h("td", {}, m.micrograph_uuid)))));
}

function simpleTable(items, cols, id) {
  if (!items.length) return h("p", { class: "muted" }, "None.");
  return h("table", { id }, h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map((it) => h("tr", {}, cols.map((c) => h("td", {}, it[c] === null || it[c] === undefined ? "–" : String(it[c])))))));
}

async function viewAgents(main) {
  const { items } = await api("agents");
  agents = new Map(items.map((a) => [a.agent, a]));
  main.append(h("h2", {}, "Agents"),
    h("p", { class: "muted" }, "An agent sends a heartbeat every interval_s seconds; it is silent after three missed ones."));
  if (!items.length) { main.append(h("p", { class: "muted" }, "No heartbeat stored yet.")); return; }
  main.append(h("table", { id: "agents" }, h("thead", {}, h("tr", {}, ["Agent", "Status", "Host", "Version", "Last heartbeat",
      "Files", "Directories", "Outbox", "Bus", "Lag (s)", "Errors"].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map((a) => h("tr", { "data-agent": a.agent }, h("td", {}, a.agent), h("td", {}, agentBadge(a.agent)),
      h("td", {}, a.host), h("td", {}, a.version), h("td", {}, fmtTime(a.last_heartbeat)),
      h("td", { class: "num" }, fmtNum(a.files_watched)), h("td", { class: "num" }, fmtNum(a.directories_watched)),
      h("td", { class: "num" }, fmtNum(a.outbox_events)), h("td", {}, a.bus), h("td", { class: "num" }, fmtNum(a.lag_seconds, 2)),
      h("td", { class: "num" }, fmtNum(a.errors)))))));
}

async function viewDatasets(main) {
  const { items } = await api("datasets");
  main.append(h("h2", {}, "Datasets"), simpleTable(items,
    ["loader", "dataset_id", "status", "job", "job_status", "volume", "shape", "data_type", "mismatches", "seen_at"], "datasets"));
}

async function viewJobs(main) {
  const { items } = await api("jobs");
  main.append(h("h2", {}, "Loader jobs"), simpleTable(items,
    ["id", "loader", "status", "attempts", "bytes_done", "bytes_total", "error", "updated_at"], "jobs"));
}

// ---- routing and live updates ----

async function render() {
  if (rendering) { again = true; return; }
  rendering = true;
  const main = document.getElementById("view");
  const fresh = document.createElement("main");
  const m = location.hash.match(/^#\/sessions\/(\d+)(?:\/squares\/(\d+))?$/);
  try {
    if (m && m[2]) await viewSquare(fresh, m[1], m[2]);
    else if (m) await viewSession(fresh, m[1]);
    else if (location.hash === "#/agents") await viewAgents(fresh);
    else if (location.hash === "#/datasets") await viewDatasets(fresh);
    else if (location.hash === "#/jobs") await viewJobs(fresh);
    else await viewSessions(fresh);
    main.replaceChildren(...fresh.childNodes);
    main.dataset.ready = "1";
    document.getElementById("updated").textContent = "updated " + fmtTime(new Date().toISOString());
  } catch (e) {
    main.replaceChildren(h("p", { class: "banner", role: "alert" },
      e.status === 404 ? `Not found: ${e.message}` : `Cannot load this view: ${e.message}`));
    main.dataset.ready = "error";
  }
  rendering = false;
  if (again) { again = false; render(); }
}

function redrawSoon() {
  if (redrawTimer) return;
  redrawTimer = setTimeout(() => { redrawTimer = null; render(); }, 500);
}

let source = null;
function live() {
  if (source) source.close();
  const live = document.getElementById("live");
  source = new EventSource("api/v1/events" + (token ? "?access_token=" + encodeURIComponent(token) : ""));
  source.addEventListener("open", () => { live.textContent = "live"; live.className = "live-on"; });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live-off"; });
  source.addEventListener("change", redrawSoon);
}

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("em-token", token);
  e.target.hidden = true;
  live();
  render();
});
window.addEventListener("hashchange", () => { document.getElementById("view").focus(); render(); });
setInterval(render, 30000);
live();
fetch("health", { cache: "no-store" }).then((r) => r.json()).then((hl) => { images = !!hl.images; })
  .catch(() => {}).finally(render);
