// The web console: plain JavaScript over this node's HTTP admin API (/v1/...).
// Every value from the cluster reaches the page through textContent, never as HTML.
"use strict";

const view = document.getElementById("view");
const flashBox = document.getElementById("flash");
let timer = null;  // the current page's periodic refresh, stopped on navigation

// -- helpers ---------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(headers, rows, id) {
  return el("table", {id: id},
    el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
    el("tbody", {}, rows.map(r => el("tr", {}, r.map(c =>
      c instanceof Node && c.tagName === "TD" ? c : el("td", typeof c === "number" ? {class: "num"} : {}, c))))));
}

function badge(text, kind) { return el("span", {class: "badge " + kind}, text); }

function flash(text, ok) {
  flashBox.textContent = text;
  flashBox.className = ok ? "ok" : "bad";
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || ("HTTP " + status));
    this.status = status;
    this.code = body && body.error_code;
  }
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem("token");
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const data = (resp.headers.get("Content-Type") || "").startsWith("application/json") ? await resp.json() : null;
  if (resp.status === 401) document.getElementById("login").hidden = false;
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

function bytesOf(b64) {
  if (b64 === null || b64 === undefined) return null;
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// Bytes as text (UTF-8; hex when they are not UTF-8 or hold control characters) or as hex; "null" for a null value.
function asText(b64, mode) {
  const b = bytesOf(b64);
  if (b === null) return "null";
  const hex = () => Array.from(b, x => x.toString(16).padStart(2, "0")).join(" ");
  if (mode === "hex") return hex();
  let text;
  try { text = new TextDecoder("utf-8", {fatal: true}).decode(b); }
  catch (e) { return hex(); }
  // Control characters (tabs and newlines aside) mean binary data: shown as hex.
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text) ? hex() : text;
}

function show(b64, mode) {
  return b64 === null || b64 === undefined ? el("span", {class: "muted"}, "null") : asText(b64, mode);
}

function link(href, text) { return el("a", {href: href}, text); }
function enc(s) { return encodeURIComponent(s); }

async function write(what, method, path, body) {
  if (!window.confirm(what + "?")) return null;
  try {
    const r = await api(method, path, body);
    flash(what + ": done", true);
    return r;
  } catch (e) {
    flash(what + " failed: " + (e.code ? e.code + ": " : "") + e.message, false);
    return null;
  }
}

// -- pages -----------------------------------------------------------------------------------

async function overview() {
  const [c, q] = await Promise.all([api("GET", "/v1/cluster"), api("GET", "/v1/quorum").catch(() => null)]);
  const h = c.health;
  const out = [
    el("h2", {}, "Cluster ", el("span", {id: "cluster-id"}, c.cluster_id)),
    el("p", {}, "Health: ", h.is_healthy ? badge("healthy", "ok") : badge("unhealthy", "bad"),
       " ", h.unhealthy_reasons.join(", ")),
    table(["Active controller", "Metadata offset", "Brokers", "Nodes down",
           "Under-replicated partitions", "Leaderless partitions"],
          [[c.controller_id, c.metadata_offset, c.brokers.length, h.nodes_down.join(", ") || "none",
            h.under_replicated_count, h.leaderless_count]], "cluster-table"),
  ];
  if (q) {
    const rows = [];
    for (const [role, list] of [["voter", q.voters], ["observer", q.observers]]) {
      for (const r of list) {
        rows.push([r.replica_id, r.replica_id === q.leader_id ? "leader" : role, r.log_end_offset,
                   r.lag, r.status || ""]);
      }
    }
    out.push(el("h3", {}, "Metadata quorum (epoch " + q.leader_epoch + ", high watermark " +
                q.high_watermark + ")"),
             table(["Node", "Role", "Log end offset", "Lag", "Status"], rows, "quorum-table"));
  }
  return out;
}

async function brokers() {
  const c = await api("GET", "/v1/cluster");
  const rows = c.brokers.map(b => [
    b.broker_id,
    b.fenced ? badge("fenced", "bad") : badge("active", "ok"),
    b.endpoints.map(e => e.name + "://" + e.host + ":" + e.port).join(", "),
    b.rack || "",
    el("td", {}, el("button", {onclick: () => logDirs(b.broker_id)}, "log dirs")),
  ]);
  return [el("h2", {}, "Brokers"), table(["Id", "State", "Listeners", "Rack", ""], rows, "brokers-table"),
          el("div", {id: "log-dirs"})];
}

async function logDirs(id) {
  const box = document.getElementById("log-dirs");
  try {
    const d = await api("GET", "/v1/brokers/" + id + "/log-dirs");
    const rows = [];
    for (const dir of d.log_dirs) {
      rows.push([dir.log_dir, dir.error_code ? badge(dir.error_code, "bad") : badge("online", "ok"),
                 (dir.partitions || []).length, (dir.partitions || []).reduce((s, p) => s + p.size, 0)]);
    }
    box.replaceChildren(el("h3", {}, "Log dirs of broker " + id),
                        table(["Dir", "State", "Partitions", "Bytes"], rows, "log-dirs-table"));
  } catch (e) { flash("log dirs of broker " + id + ": " + e.message, false); }
}

async function topics() {
  const [t, c] = await Promise.all([api("GET", "/v1/topics?include_internal=true"), api("GET", "/v1/cluster")]);
  const urp = new Set(c.health.under_replicated_partitions.map(p => p.topic));
  const rows = t.topics.map(x => [link("#/topic/" + enc(x.name), x.name), x.partitions_count,
    x.replication_factor, x.internal ? "internal" : "",
    urp.has(x.name) ? badge("under-replicated", "warn") : badge("ok", "ok")]);
  const name = el("input", {id: "new-topic-name", placeholder: "name", required: true});
  const parts = el("input", {id: "new-topic-partitions", type: "number", min: 1, value: 3});
  const rf = el("input", {id: "new-topic-rf", type: "number", min: 1, value: Math.min(3, c.brokers.length)});
  const form = el("form", {class: "inline", id: "create-topic", onsubmit: async (ev) => {
    ev.preventDefault();
    const ok = await write("Create topic " + name.value, "POST", "/v1/topics",
                           {name: name.value, partitions: +parts.value, replication_factor: +rf.value});
    if (ok) route();
  }}, "New topic:", name, "partitions", parts, "replication factor", rf, el("button", {type: "submit"}, "Create"));
  return [el("h2", {}, "Topics"), form,
          table(["Topic", "Partitions", "Replication factor", "Internal", "Replicas in sync"], rows, "topics-table")];
}

async function topic(name) {
  const [t, p] = await Promise.all([api("GET", "/v1/topics/" + enc(name)),
                                    api("GET", "/v1/topics/" + enc(name) + "/partitions")]);
  const prows = p.partitions.map(x => [x.partition, x.leader, x.leader_epoch, x.replicas.join(","),
    x.isr.join(","), x.isr.length < x.replicas.length ? badge("under-replicated", "warn") : badge("in sync", "ok"),
    x.log_start_offset, x.high_watermark,
    el("td", {}, el("button", {class: "elect", onclick: async () => {
      await write("Elect the preferred leader of " + name + "-" + x.partition, "POST",
                  "/v1/partitions/" + enc(name) + "/" + x.partition + "/elect-leader", {election_type: "preferred"});
      route();
    }}, "elect preferred leader"))]);
  const crows = Object.keys(t.configs).sort().map(k => [k, t.configs[k] === null ? "" : String(t.configs[k]),
    k in t.overrides ? badge("set on topic", "warn") : el("span", {class: "muted"}, "default")]);
  const key = el("input", {id: "config-key", placeholder: "retention.ms", list: "config-keys"});
  const value = el("input", {id: "config-value", placeholder: "value (empty: back to default)"});
  const cform = el("form", {class: "inline", id: "config-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const configs = {}; configs[key.value] = value.value === "" ? null : value.value;
    if (await write("Set " + key.value + " on " + name, "PATCH", "/v1/topics/" + enc(name), {configs})) route();
  }}, "Change config:", key, value, el("button", {type: "submit"}, "Apply"),
     el("datalist", {id: "config-keys"}, Object.keys(t.configs).map(k => el("option", {value: k}))));
  const psel = el("select", {id: "browse-partition"}, p.partitions.map(x => el("option", {value: x.partition}, x.partition)));
  const limit = el("input", {id: "browse-limit", type: "number", min: 1, max: 1000, value: 20});
  const mode = el("select", {id: "browse-mode"}, el("option", {value: "text"}, "text"), el("option", {value: "hex"}, "hex"));
  const out = el("div", {id: "records"});
  let last = null;
  const render = () => {
    if (!last) return;
    out.replaceChildren(el("p", {class: "muted"}, "Offsets " + last.start_offset + " to " + last.end_offset +
                           "; showing " + last.records.length),
      table(["Offset", "Timestamp", "Key", "Value", "Headers"], last.records.map(r => [
        r.offset, new Date(r.timestamp).toISOString(), el("td", {class: "bytes"}, show(r.key, mode.value)),
        el("td", {class: "bytes"}, show(r.value, mode.value)),
        el("td", {class: "bytes"}, r.headers.map(h => h.key + "=" + asText(h.value, mode.value)).join("; "))]),
        "records-table"));
  };
  mode.addEventListener("change", render);
  const bform = el("form", {class: "inline", id: "browse-form", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      last = await api("GET", "/v1/partitions/" + enc(name) + "/" + psel.value + "/records?limit=" + limit.value);
      render();
    } catch (e) { flash("Reading records failed: " + e.message, false); }
  }}, "Partition", psel, "latest", limit, "records as", mode, el("button", {type: "submit"}, "Show"));
  return [el("h2", {}, "Topic ", el("span", {id: "topic-name"}, name)),
          el("p", {class: "muted"}, "id " + t.topic_id + ", " + t.partitions_count + " partitions, replication factor " + t.replication_factor),
          el("h3", {}, "Partitions"),
          table(["Partition", "Leader", "Leader epoch", "Replicas", "ISR", "", "Start offset", "High watermark", ""], prows, "partitions-table"),
          el("h3", {}, "Messages"), bform, out,
          el("h3", {}, "Configs"), cform, table(["Key", "Value", ""], crows, "configs-table")];
}

async function groups() {
  const g = await api("GET", "/v1/consumer-groups");
  const rows = g.groups.map(x => [link("#/group/" + enc(x.group_id), x.group_id), x.state || "",
                                  x.protocol_type, x.coordinator_id]);
  return [el("h2", {}, "Consumer groups"), table(["Group", "State", "Protocol", "Coordinator"], rows, "groups-table")];
}

const lagHistory = {};  // group id -> [[time, {topic-partition: lag}]]

function drawLag(canvas, history) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const series = new Set();
  history.forEach(([, lags]) => Object.keys(lags).forEach(k => series.add(k)));
  const max = Math.max(1, ...history.flatMap(([, lags]) => Object.values(lags)));
  const t0 = history.length ? history[0][0] : 0, t1 = history.length ? history[history.length - 1][0] : 1;
  ctx.strokeStyle = "#999"; ctx.strokeRect(pad, 5, w - pad - 5, h - pad);
  ctx.fillStyle = "#444"; ctx.font = "11px sans-serif";
  ctx.fillText(String(max), 2, 14); ctx.fillText("0", 2, h - pad + 5);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
  [...series].sort().forEach((s, i) => {
    ctx.strokeStyle = colors[i % colors.length]; ctx.beginPath();
    history.forEach(([t, lags], j) => {
      const x = pad + (w - pad - 5) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0);
      const y = 5 + (h - pad) * (1 - (lags[s] || 0) / max);
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke(); ctx.fillStyle = colors[i % colors.length]; ctx.fillText(s, pad + 5 + 110 * i, h - 8);
  });
  canvas.dataset.samples = String(history.length);
}

async function group(id) {
  const g = await api("GET", "/v1/consumer-groups/" + enc(id));
  const members = g.members.map(m => [m.member_id, m.client_id, m.client_host,
    m.assignment.map(a => a.topic + ": " + a.partitions.join(",")).join("; ")]);
  const offsets = g.offsets.map(o => [o.topic, o.partition, o.committed_offset,
    o.high_watermark === null ? "" : o.high_watermark, o.lag === null ? "" : o.lag]);
  const canvas = el("canvas", {id: "lag-chart", width: 640, height: 200, "data-samples": "0"});
  const history = lagHistory[id] = lagHistory[id] || [];
  const sample = (gg) => {
    const lags = {};
    gg.offsets.forEach(o => { if (o.lag !== null) lags[o.topic + "-" + o.partition] = o.lag; });
    history.push([Date.now(), lags]);
    if (history.length > 300) history.shift();
    drawLag(canvas, history);
  };
  const topicsOf = [...new Set(g.offsets.map(o => o.topic))];
  const tsel = el("select", {id: "reset-topic"}, topicsOf.map(t => el("option", {value: t}, t)));
  const to = el("select", {id: "reset-to"}, ["earliest", "latest", "offset"].map(x => el("option", {value: x}, x)));
  const off = el("input", {id: "reset-offset", type: "number", min: 0, placeholder: "offset"});
  const rform = el("form", {class: "inline", id: "reset-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {topic: tsel.value, to: to.value};
    if (to.value === "offset") body.offset = +off.value;
    const r = await write("Reset the offsets of group " + id + " on " + tsel.value + " to " + to.value,
                          "POST", "/v1/consumer-groups/" + enc(id) + "/reset-offsets", body);
    if (r) route();
  }}, "Reset offsets (group must be inactive):", tsel, "to", to, off, el("button", {type: "submit"}, "Reset"));
  timer = setInterval(async () => {
    try { const gg = await api("GET", "/v1/consumer-groups/" + enc(id)); sample(gg);
          document.getElementById("group-state").textContent = gg.state;
          document.getElementById("total-lag").textContent = gg.total_lag; }
    catch (e) { /* the next sample tries again */ }
  }, 2000);
  setTimeout(() => sample(g), 0);
  return [el("h2", {}, "Group ", el("span", {id: "group-id"}, id)),
          el("p", {}, "State ", el("b", {id: "group-state"}, g.state), ", protocol " + (g.protocol || "-") +
             ", coordinator " + g.coordinator_id + ", total lag ", el("b", {id: "total-lag"}, g.total_lag)),
          el("h3", {}, "Members"), table(["Member", "Client id", "Host", "Assignment"], members, "members-table"),
          el("h3", {}, "Committed offsets and lag"),
          table(["Topic", "Partition", "Committed", "High watermark", "Lag"], offsets, "offsets-table"),
          el("h3", {}, "Lag over time (sampled every 2 s while this page is open)"), canvas,
          topicsOf.length ? rform : null];
}

// -- router ----------------------------------------------------------------------------------

const pages = [
  [/^#?\/?$/, overview, "nav-overview"],
  [/^#\/brokers$/, brokers, "nav-brokers"],
  [/^#\/topics$/, topics, "nav-topics"],
  [/^#\/topic\/(.+)$/, topic, "nav-topics"],
  [/^#\/groups$/, groups, "nav-groups"],
  [/^#\/group\/(.+)$/, group, "nav-groups"],
];

async function route() {
  if (timer) { clearInterval(timer); timer = null; }
  const hash = location.hash || "#/";
  for (const [re, page, nav] of pages) {
    const m = hash.match(re);
    if (!m) continue;
    document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.id === nav));
    view.replaceChildren(el("p", {class: "muted"}, "Loading…"));
    try {
      const content = await page(...m.slice(1).map(decodeURIComponent));
      view.replaceChildren(...content.filter(Boolean));
      view.dataset.page = nav;
    } catch (e) {
      view.replaceChildren(el("p", {class: "bad", id: "page-error"}, (e.code ? e.code + ": " : "") + e.message));
    }
    return;
  }
  view.replaceChildren(el("p", {}, "No such page"));
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("token", document.getElementById("login-token").value);
  document.getElementById("login").hidden = true;
  route();
});
window.addEventListener("hashchange", () => { flashBox.textContent = ""; flashBox.className = ""; route(); });
api("GET", "/v1/cluster").then(c => {
  document.getElementById("node").textContent = "node " + c.node_id;
}).catch(() => {});
route();
