/* harlem report viewer.
 *
 * Safety: every value that comes from the HAR is put on the page with textContent, DOM
 * properties or data:/blob: image URLs; nothing from the HAR is ever parsed as HTML.
 * Speed: the entry list is virtualised (only the rows in view exist in the DOM) and the
 * detail pane renders the selected tab only, so bodies are decoded and pretty-printed on
 * demand.
 */
"use strict";
(function () {
  const T0 = performance.now();
  const PHASES = ["blocked", "dns", "connect", "ssl", "send", "wait", "receive"];
  const PHASE_LABEL = { blocked: "Blocked", dns: "DNS", connect: "Connect", ssl: "TLS", send: "Send", wait: "Wait", receive: "Receive" };
  const ROW_H = 26;
  const OVERSCAN = 12;
  const TEXT_LIMIT = 1 << 20; // show at most 1 MiB of a body before "Show all"
  const PRETTY_LIMIT = 8 << 20; // pretty-print JSON bodies up to 8 MiB
  const HILITE_LIMIT = 256 << 10; // colour JSON up to 256 KiB of pretty text
  const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "failed"];

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const obj = (v) => (isObj(v) ? v : {});
  const arr = (v) => (Array.isArray(v) ? v : []);
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : -1);
  const str = (v) => (v === undefined || v === null ? "" : typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v));

  // ---------- formatting ----------
  function fmtBytes(n) {
    if (!(n >= 0)) return "\u2014";
    if (n < 1000) return n + " B";
    if (n < 1e6) return (n / 1e3).toFixed(1) + " kB";
    if (n < 1e9) return (n / 1e6).toFixed(1) + " MB";
    return (n / 1e9).toFixed(2) + " GB";
  }
  function fmtMs(v) {
    if (!(v >= 0)) return "\u2014";
    if (v < 10) return v.toFixed(1) + " ms";
    if (v < 1000) return Math.round(v) + " ms";
    if (v < 60000) return (v / 1000).toFixed(2) + " s";
    const m = Math.floor(v / 60000);
    const s = Math.floor((v % 60000) / 1000);
    return m + " min " + (s < 10 ? "0" : "") + s + " s";
  }
  function fmtTick(v, step) {
    if (v === 0) return "0";
    if (step >= 100 && v >= 1000) return (v / 1000).toFixed(step >= 1000 ? 0 : 1) + " s";
    return v.toFixed(step >= 1 ? 0 : step >= 0.1 ? 1 : 2) + " ms";
  }

  const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
  function parseDate(s) {
    if (typeof s !== "string") return NaN;
    const m = DATE_RE.exec(s.trim());
    if (!m) return Date.parse(s);
    let t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], m[6] ? +m[6] : 0);
    if (m[7]) t += parseFloat(m[7]) * 1000;
    const z = m[8];
    if (z && z.toUpperCase() !== "Z") {
      const sign = z[0] === "-" ? -1 : 1;
      const hh = +z.slice(1, 3);
      const mm = z.length > 3 ? +z.slice(-2) : 0;
      t -= sign * (hh * 60 + mm) * 60000;
    }
    return t;
  }

  function baseMime(m) { return str(m).split(";")[0].trim().toLowerCase(); }
  function isTextMime(m) {
    return m.startsWith("text/") || /json|xml|javascript|ecmascript|x-www-form-urlencoded|graphql|yaml|csv|x-ndjson/.test(m);
  }
  function deriveType(mime) {
    const m = baseMime(mime);
    if (!m) return "";
    if (m.includes("json")) return "json";
    if (m === "text/html" || m === "application/xhtml+xml") return "html";
    if (m === "text/css") return "css";
    if (m.includes("javascript") || m.includes("ecmascript")) return "script";
    if (m.startsWith("image/")) return "image";
    if (m.startsWith("font/") || m.includes("font")) return "font";
    if (m.startsWith("audio/") || m.startsWith("video/")) return "media";
    if (m.includes("xml")) return "xml";
    if (m.startsWith("text/")) return "text";
    if (m.startsWith("multipart/") || m === "application/x-www-form-urlencoded") return "form";
    if (m.startsWith("application/")) return "binary";
    return "other";
  }
  const HOST_RE = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#]*)/i;
  function splitUrl(url) {
    const m = HOST_RE.exec(url);
    if (!m) return ["", "", url];
    return [m[1].toLowerCase(), url.slice(0, m[0].length), url.slice(m[0].length) || "/"];
  }
  function errorText(v) {
    if (v === undefined || v === null || v === false || v === "") return "";
    if (isObj(v)) return str(v.message || v.type || JSON.stringify(v));
    return str(v);
  }

  // ---------- data ----------
  function readJSON(id) {
    const n = $(id);
    return n ? JSON.parse(n.textContent) : null;
  }
  let meta, har;
  try {
    meta = obj(readJSON("report-meta"));
    har = readJSON("har-data");
  } catch (err) {
    const box = el("div", "fatal", "The embedded HAR data could not be read: " + err.message);
    $("main").replaceChildren(box);
    return;
  }
  const log = obj(obj(har).log);
  const rawEntries = arr(log.entries);
  const rawPages = arr(log.pages);

  const models = [];
  const pidCount = new Map();
  for (let i = 0; i < rawEntries.length; i++) {
    const e = obj(rawEntries[i]);
    const req = obj(e.request), resp = obj(e.response), content = obj(resp.content);
    const url = str(req.url);
    const parts = splitUrl(url);
    const status = num(resp.status);
    const error = errorText(resp._error) || errorText(e._error);
    const failed = !(status > 0) || error !== "";
    let cls = "other";
    if (failed) cls = "failed";
    else if (status >= 100 && status < 600) cls = Math.floor(status / 100) + "xx";
    const timings = obj(e.timings);
    let time = num(e.time);
    if (time < 0) {  // the phases that are known; none (Playwright's minimal mode): unknown
      let known = false;
      time = 0;
      for (const p of PHASES) {
        if (p !== "ssl" && num(timings[p]) >= 0) { time += num(timings[p]); known = true; }
      }
      if (!known) time = -1;
    }
    // Chrome, Playwright and harlem write it on the response; some tools on the entry
    let wire = num(resp._transferSize);
    if (wire < 0) wire = num(e._transferSize);
    if (wire < 0) {
      const hs = num(resp.headersSize), bs = num(resp.bodySize);
      if (hs >= 0 || bs >= 0) wire = Math.max(hs, 0) + Math.max(bs, 0);
    }
    const decoded = num(content.size);
    const pid = e._pid === undefined || e._pid === null ? "" : str(e._pid);
    if (pid) pidCount.set(pid, (pidCount.get(pid) || 0) + 1);
    models.push({
      i, e, url, host: parts[0], origin: parts[1], path: parts[2],
      method: str(req.method).toUpperCase() || "?",
      status, statusText: str(resp.statusText), error, failed, cls,
      type: str(e._resourceType) || deriveType(content.mimeType) || "other",
      start: parseDate(e.startedDateTime), time, wire, decoded,
      size: wire >= 0 ? wire : decoded,
      pid, child: false, incoming: e._direction === "incoming",
      redirect: str(resp.redirectURL), page: str(e.pageref),
      n: 0, k: -1, lower: null,
    });
  }
  let mainPid = "";
  let best = -1;
  for (const [pid, c] of pidCount) if (c > best) { best = c; mainPid = pid; }
  for (const m of models) m.child = m.pid !== "" && m.pid !== mainPid;

  // chronological order gives the "#" column
  const chrono = models.slice().sort((a, b) => {
    const sa = isFinite(a.start) ? a.start : Infinity, sb = isFinite(b.start) ? b.start : Infinity;
    return sa - sb || a.i - b.i;
  });
  chrono.forEach((m, idx) => { m.n = idx + 1; });
  let t0 = Infinity, tEnd = -Infinity;
  for (const m of models) {
    if (!isFinite(m.start)) continue;
    if (m.start < t0) t0 = m.start;
    if (m.start + Math.max(m.time, 0) > tEnd) tEnd = m.start + Math.max(m.time, 0);
  }
  const hasTime = isFinite(t0);
  const span = hasTime ? Math.max(tEnd - t0, 1) : 1;

  // page groups
  const groups = [];
  const groupById = new Map();
  rawPages.forEach((p0, idx) => {
    const p = obj(p0);
    const id = str(p.id);
    if (groupById.has(id)) return;
    const g = { id, title: str(p.title) || id || "page " + (idx + 1), page: p, start: parseDate(p.startedDateTime), models: [], pos: idx };
    groupById.set(id, g);
    groups.push(g);
  });
  const useGroups = groups.length > 0 || models.some((m) => m.page);
  if (useGroups) {
    for (const m of models) {
      let g = groupById.get(m.page);
      if (!g) {
        g = { id: m.page, title: m.page ? m.page : "Not in a page", page: null, start: NaN, models: [], pos: 1e9 };
        groupById.set(m.page, g);
        groups.push(g);
      }
      g.models.push(m);
    }
    for (const g of groups) {
      if (!isFinite(g.start)) for (const m of g.models) if (isFinite(m.start) && !(m.start >= g.start)) g.start = m.start;
    }
    groups.sort((a, b) => (isFinite(a.start) ? a.start : Infinity) - (isFinite(b.start) ? b.start : Infinity) || a.pos - b.pos);
  } else {
    groups.push({ id: "", title: "", page: null, start: t0, models: models.slice(), pos: 0 });
  }

  // ---------- state ----------
  const state = { q: "", method: "", cls: "", sortKey: "n", sortDir: 1, selected: null, detail: false, tab: "headers", collapsed: new Set() };
  let items = [];
  let shownCount = 0;

  const COLUMNS = [
    { key: "n", label: "#", cls: "c-n r" },
    { key: "method", label: "Method", cls: "c-m" },
    { key: "url", label: "URL", cls: "c-url" },
    { key: "status", label: "Status", cls: "c-st" },
    { key: "type", label: "Type", cls: "c-type" },
    { key: "size", label: "Size", cls: "c-sz r" },
    { key: "time", label: "Time", cls: "c-tm r" },
    { key: "n", label: "Waterfall", cls: "c-wf", wf: true },
  ];
  const CMP = {
    n: (a, b) => a.n - b.n,
    method: (a, b) => (a.method < b.method ? -1 : a.method > b.method ? 1 : 0),
    url: (a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0),
    status: (a, b) => (a.failed ? 0 : a.status) - (b.failed ? 0 : b.status),
    type: (a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
    size: (a, b) => a.size - b.size,
    time: (a, b) => a.time - b.time,
  };

  function matches(m) {
    if (state.method && m.method !== state.method) return false;
    if (state.cls && m.cls !== state.cls) return false;
    if (state.q) {
      if (m.lower === null) m.lower = m.url.toLowerCase();
      if (!m.lower.includes(state.q)) return false;
    }
    return true;
  }

  function rebuild() {
    const cmp = CMP[state.sortKey] || CMP.n;
    const dir = state.sortDir;
    const sorter = (a, b) => dir * cmp(a, b) || a.n - b.n;
    for (const m of models) m.k = -1;
    items = [];
    shownCount = 0;
    for (const g of groups) {
      const list = g.models.filter(matches);
      shownCount += list.length;
      if (useGroups) {
        if (list.length === 0 && (state.q || state.method || state.cls)) continue;
        items.push({ group: g, shown: list.length });
        if (state.collapsed.has(g.id)) continue;
      }
      list.sort(sorter);
      for (const m of list) { m.k = items.length; items.push(m); }
    }
    const total = models.length;
    $("count").textContent = shownCount === total ? total + (total === 1 ? " request" : " requests") : shownCount + " of " + total + " requests";
    const empty = $("empty");
    if (total === 0) { empty.hidden = false; empty.textContent = "This HAR file has no entries."; }
    else if (shownCount === 0) { empty.hidden = false; empty.textContent = "No request matches the filters."; }
    else empty.hidden = true;
    lastRange = "";
    render();
  }

  // ---------- header, ticks, legend ----------
  let tickStep = 1;
  function buildHeader() {
    const head = $("thead");
    const frag = document.createDocumentFragment();
    COLUMNS.forEach((c) => {
      const d = el("div", c.cls);
      d.dataset.key = c.key;
      if (c.wf) {
        d.title = "Waterfall (sort by start time)";
      } else {
        d.appendChild(el("span", "", c.label));
        if (state.sortKey === c.key && !(c.key === "n" && state.sortDir === 1)) {
          d.classList.add("sorted");
          d.appendChild(el("span", "", state.sortDir > 0 ? "\u25B2" : "\u25BC"));
        }
      }
      frag.appendChild(d);
    });
    head.replaceChildren(frag);
    layoutTicks();
  }
  let tickWidth = -1;
  function layoutTicks() {
    const d = $("thead").querySelector(".c-wf");
    if (!d) return;
    const w = d.clientWidth || 200;
    if (w === tickWidth && d.childElementCount) return;
    tickWidth = w;
    const want = Math.max(2, Math.floor(w / 64));
    const raw = span / want;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    tickStep = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    const frag = document.createDocumentFragment();
    for (let t = 0; t < span; t += tickStep) {
      const tk = el("span", "tick", (t / span) * w + 34 < w ? fmtTick(t, tickStep) : "");
      tk.style.left = (t / span) * 100 + "%";
      frag.appendChild(tk);
    }
    d.replaceChildren(frag);
    document.documentElement.style.setProperty("--tick", (tickStep / span) * 100 + "%");
  }
  $("thead").addEventListener("click", (ev) => {
    const d = ev.target.closest("[data-key]");
    if (!d) return;
    const key = d.dataset.key;
    if (d.classList.contains("c-wf")) { state.sortKey = "n"; state.sortDir = 1; }
    else if (state.sortKey === key) state.sortDir = -state.sortDir;
    else { state.sortKey = key; state.sortDir = key === "size" || key === "time" ? -1 : 1; }
    buildHeader();
    rebuild();
  });

  function buildLegend() {
    const lg = $("legend");
    for (const p of PHASES) {
      const s = el("span", "lg");
      const sw = el("span", "sw p-" + p);
      s.appendChild(sw);
      s.appendChild(document.createTextNode(PHASE_LABEL[p]));
      lg.appendChild(s);
    }
  }

  // ---------- summary ----------
  function card(k, v, cls) {
    const c = el("div", "card" + (cls ? " " + cls : ""));
    c.appendChild(el("div", "k", k));
    c.appendChild(el("div", "v", v));
    return c;
  }
  const statusChips = new Map();
  function buildSummary() {
    const s = $("summary");
    let failed = 0, wire = 0, decoded = 0, anyWire = false, anyDecoded = false;
    const hosts = new Map();
    const classes = new Map();
    for (const m of models) {
      if (m.failed) failed++;
      if (m.wire >= 0) { wire += m.wire; anyWire = true; }
      if (m.decoded >= 0) { decoded += m.decoded; anyDecoded = true; }
      const h = m.host || "(no host)";
      hosts.set(h, (hosts.get(h) || 0) + 1);
      classes.set(m.cls, (classes.get(m.cls) || 0) + 1);
    }
    s.appendChild(card("Requests", models.length));
    s.appendChild(card("Failed", failed, failed ? "bad" : ""));
    s.appendChild(card("On the wire", fmtBytes(anyWire ? wire : -1)));
    s.appendChild(card("Decoded", fmtBytes(anyDecoded ? decoded : -1)));
    s.appendChild(card("Time span", hasTime ? fmtMs(tEnd - t0) : "\u2014"));

    const bd = el("div", "card breakdown");
    const sr = el("div", "bd-row");
    sr.appendChild(el("div", "k", "Status"));
    const chips = el("div", "chips");
    for (const c of CLASSES.concat(["other"])) {
      const n = classes.get(c);
      if (!n) continue;
      const chip = el("button", "chip");
      chip.type = "button";
      chip.title = "Show only " + c;
      const dot = el("span", "dot");
      dot.style.background = "var(--s" + (c === "other" ? "1xx" : c) + ")";
      chip.appendChild(dot);
      chip.appendChild(el("span", "nm s" + c, c));
      chip.appendChild(el("span", "n", n));
      chip.addEventListener("click", () => setStatusFilter(state.cls === c ? "" : c));
      statusChips.set(c, chip);
      chips.appendChild(chip);
    }
    sr.appendChild(chips);
    bd.appendChild(sr);

    const hr = el("div", "bd-row");
    hr.appendChild(el("div", "k", hosts.size === 1 ? "Host" : "Hosts"));
    const hchips = el("div", "chips");
    const sorted = Array.from(hosts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const LIMIT = 3;
    const addHost = ([h, n]) => {
      const chip = el("button", "chip");
      chip.type = "button";
      chip.title = "Filter by " + h;
      chip.appendChild(el("span", "nm", h));
      chip.appendChild(el("span", "n", n));
      chip.addEventListener("click", () => { const f = $("filter"); f.value = h === "(no host)" ? "" : h; onFilter(); });
      hchips.appendChild(chip);
    };
    sorted.slice(0, LIMIT).forEach(addHost);
    if (sorted.length > LIMIT) {
      const more = el("button", "chip", "+" + (sorted.length - LIMIT) + " more");
      more.type = "button";
      more.title = "Show all " + sorted.length + " hosts";
      more.addEventListener("click", () => { more.remove(); sorted.slice(LIMIT).forEach(addHost); });
      hchips.appendChild(more);
    }
    hr.appendChild(hchips);
    bd.appendChild(hr);
    s.appendChild(bd);

    const creator = obj(log.creator);
    const bits = [];
    if (creator.name) bits.push("recorded by " + str(creator.name) + (creator.version ? " " + str(creator.version) : ""));
    if (hasTime) bits.push("started " + new Date(t0).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"));
    if (mainPid && pidCount.size > 1) bits.push(pidCount.size + " processes");
    $("creator").textContent = bits.join(" \u00B7 ");
  }

  // ---------- filters ----------
  function buildFilters() {
    const ms = $("method-filter");
    const methods = Array.from(new Set(models.map((m) => m.method))).sort();
    for (const m of methods) { const o = el("option", "", m); o.value = m; ms.appendChild(o); }
    const ss = $("status-filter");
    const present = new Set(models.map((m) => m.cls));
    for (const c of CLASSES.concat(["other"])) {
      if (c === "other" && !present.has(c)) continue;
      const o = el("option", "", c === "failed" ? "failed" : c);
      o.value = c;
      ss.appendChild(o);
    }
    ms.addEventListener("change", () => { state.method = ms.value; rebuild(); });
    ss.addEventListener("change", () => setStatusFilter(ss.value));
    let timer = 0;
    $("filter").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(onFilter, models.length > 20000 ? 120 : 30);
    });
  }
  function onFilter() {
    state.q = $("filter").value.trim().toLowerCase();
    rebuild();
  }
  function setStatusFilter(c) {
    state.cls = c;
    $("status-filter").value = c;
    for (const [k, chip] of statusChips) chip.classList.toggle("on", k === c);
    rebuild();
  }

  // ---------- virtual list ----------
  const list = $("list");
  const vbody = $("vbody");
  let lastRange = "";
  let rafPending = false;
  function schedule() {
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(() => { rafPending = false; render(); });
  }
  function render() {
    vbody.style.height = items.length * ROW_H + "px";
    const top = list.scrollTop;
    const viewH = list.clientHeight || 800;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(items.length, Math.ceil((top + viewH) / ROW_H) + OVERSCAN);
    const range = first + ":" + last + ":" + items.length;
    if (range === lastRange) return;
    lastRange = range;
    const frag = document.createDocumentFragment();
    for (let k = first; k < last; k++) frag.appendChild(buildRow(items[k], k));
    vbody.replaceChildren(frag);
  }
  list.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", () => { lastRange = ""; layoutTicks(); schedule(); });

  function cell(cls, text) { return el("div", cls, text); }
  function buildRow(item, k) {
    if (item.group) return buildGroupRow(item, k);
    const m = item;
    const r = el("div", "row e" + (m.failed ? " failed" : "") + (m === state.selected ? " sel" : ""));
    r.style.top = k * ROW_H + "px";
    r.dataset.k = k;
    r.appendChild(cell("c-n r", m.n));
    r.appendChild(cell("c-m", m.method));
    const u = cell("c-url");
    if (m.incoming) { const b = el("span", "badge in", "incoming"); b.title = "Served by this program"; u.appendChild(b); }
    if (m.child) { const b = el("span", "badge pid", "pid " + m.pid); b.title = "Recorded in a child process"; u.appendChild(b); }
    if (m.origin) u.appendChild(el("span", "h", m.origin));
    u.appendChild(document.createTextNode(m.origin ? m.path : m.url));
    u.title = m.url;
    r.appendChild(u);
    const st = cell("c-st s" + m.cls, m.failed ? (m.error || (m.status > 0 ? m.status : "failed")) : m.status);
    st.title = m.failed ? "Failed: " + (m.error || "no response") : m.status + " " + m.statusText;
    r.appendChild(st);
    r.appendChild(cell("c-type", m.type));
    const sz = cell("c-sz r", fmtBytes(m.size));
    sz.title = "on the wire " + fmtBytes(m.wire) + ", decoded " + fmtBytes(m.decoded);
    r.appendChild(sz);
    r.appendChild(cell("c-tm r", fmtMs(m.time)));
    r.appendChild(buildBar(m));
    return r;
  }
  function buildBar(m) {
    const wf = el("div", "c-wf");
    if (!hasTime || !isFinite(m.start)) return wf;
    const bar = el("div", "bar" + (m.failed ? " failed" : ""));
    bar.style.left = ((m.start - t0) / span) * 100 + "%";
    bar.style.width = (Math.max(m.time, 0) / span) * 100 + "%";
    const t = obj(m.e.timings);
    const ssl = num(t.ssl);
    let total = 0;
    const tip = ["+" + fmtMs(m.start - t0) + "  total " + fmtMs(m.time)];
    for (const p of PHASES) {
      let v = num(t[p]);
      if (v >= 0) tip.push(PHASE_LABEL[p] + " " + fmtMs(v));
      if (p === "connect" && ssl > 0 && v > 0) v = Math.max(v - ssl, 0);
      if (v > 0) {
        const s = el("span", "p-" + p);
        s.style.flexGrow = v;
        bar.appendChild(s);
        total += v;
      }
    }
    if (total <= 0) bar.classList.add("none");
    bar.title = tip.join("\n");
    wf.appendChild(bar);
    return wf;
  }
  function buildGroupRow(item, k) {
    const g = item.group;
    const r = el("div", "row group");
    r.style.top = k * ROW_H + "px";
    r.dataset.k = k;
    r.appendChild(el("div", "tw", state.collapsed.has(g.id) ? "\u25B6" : "\u25BC"));
    r.appendChild(el("div", "gt", g.title));
    const n = g.models.length;
    r.appendChild(el("div", "muted", item.shown === n ? n + (n === 1 ? " request" : " requests") : item.shown + " of " + n + " requests"));
    const pt = obj(obj(g.page).pageTimings);
    const bits = [];
    if (g.page && g.id && g.id !== g.title) bits.push(g.id);
    if (num(pt.onContentLoad) >= 0) bits.push("DOMContentLoaded " + fmtMs(pt.onContentLoad));
    if (num(pt.onLoad) >= 0) bits.push("load " + fmtMs(pt.onLoad));
    if (hasTime && isFinite(g.start)) {
      // a page may open before the first request: its offset is then negative
      const d = g.start - t0;
      bits.push("at " + (d < 0 ? "\u2212" + fmtMs(-d) : "+" + fmtMs(d)));
    }
    if (bits.length) r.appendChild(el("div", "muted mono", bits.join(" \u00B7 ")));
    r.title = "Click to collapse or expand";
    return r;
  }
  vbody.addEventListener("click", (ev) => {
    const r = ev.target.closest(".row");
    if (!r) return;
    const item = items[+r.dataset.k];
    if (!item) return;
    if (item.group) {
      const id = item.group.id;
      if (state.collapsed.has(id)) state.collapsed.delete(id); else state.collapsed.add(id);
      rebuild();
      return;
    }
    select(item, true);
    list.focus({ preventScroll: true });
  });

  function select(m, open) {
    state.selected = m;
    if (open) state.detail = true;
    lastRange = "";
    render();
    if (m && m.k >= 0) ensureVisible(m.k);
    if (state.detail && m) showDetail(m); else hideDetail();
  }
  function ensureVisible(k) {
    const head = vbody.offsetTop;
    const y = k * ROW_H;
    if (y < list.scrollTop) list.scrollTop = y;
    else if (head + y + ROW_H > list.scrollTop + list.clientHeight) list.scrollTop = head + y + ROW_H - list.clientHeight;
    render();
  }
  function move(step) {
    let k = state.selected && state.selected.k >= 0 ? state.selected.k : step > 0 ? -1 : items.length;
    for (let j = k + step; j >= 0 && j < items.length; j += step) {
      if (!items[j].group) { select(items[j], state.detail); return; }
    }
  }

  // ---------- keyboard ----------
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (typing) {
      if (ev.key === "Escape") { t.blur(); list.focus({ preventScroll: true }); }
      else if (ev.key === "ArrowDown" && t.id === "filter") { ev.preventDefault(); list.focus({ preventScroll: true }); move(1); }
      else if (ev.key === "Enter" && t.id === "filter") { list.focus({ preventScroll: true }); if (!state.selected) move(1); }
      return;
    }
    switch (ev.key) {
      case "ArrowDown": case "j": ev.preventDefault(); move(1); break;
      case "ArrowUp": case "k": ev.preventDefault(); move(-1); break;
      case "PageDown": ev.preventDefault(); move(Math.max(1, Math.floor(list.clientHeight / ROW_H) - 2)); break;
      case "PageUp": ev.preventDefault(); move(-Math.max(1, Math.floor(list.clientHeight / ROW_H) - 2)); break;
      case "Home": ev.preventDefault(); state.selected = null; move(1); break;
      case "End": ev.preventDefault(); state.selected = null; move(-1); break;
      case "Enter": if (state.selected) { ev.preventDefault(); select(state.selected, true); } else move(1); break;
      case "Escape":
        if (state.detail) { state.detail = false; hideDetail(); }
        else if (state.selected) { state.selected = null; lastRange = ""; render(); }
        break;
      case "/": ev.preventDefault(); $("filter").focus(); $("filter").select(); break;
      default: return;
    }
  });
  $("d-close").addEventListener("click", () => { state.detail = false; hideDetail(); list.focus({ preventScroll: true }); });

  // ---------- detail pane ----------
  const TABS = [
    ["headers", "Headers"], ["payload", "Payload"], ["response", "Response"],
    ["cookies", "Cookies"], ["timing", "Timing"], ["initiator", "Initiator"],
  ];
  function hideDetail() {
    $("detail").hidden = true;
    $("main").classList.remove("with-detail");
    $("d-body").replaceChildren();
    layoutTicks();
    lastRange = "";
    schedule();
  }
  function showDetail(m) {
    const pane = $("detail");
    const wasHidden = pane.hidden;
    pane.hidden = false;
    $("main").classList.add("with-detail");
    if (wasHidden) layoutTicks();
    $("d-method").textContent = m.method;
    $("d-url").textContent = m.url;
    const e = m.e, req = obj(e.request), resp = obj(e.response);
    const counts = {
      headers: arr(req.headers).length + arr(resp.headers).length,
      payload: arr(req.queryString).length + (isObj(req.postData) ? 1 : 0),
      cookies: arr(req.cookies).length + arr(resp.cookies).length,
      initiator: arr(obj(obj(e._initiator).stack).callFrames).length,
    };
    const tabs = $("d-tabs");
    const frag = document.createDocumentFragment();
    for (const [id, label] of TABS) {
      const b = el("button", id === state.tab ? "on" : "", label);
      b.type = "button";
      b.dataset.tab = id;
      b.setAttribute("role", "tab");
      if (counts[id]) b.appendChild(el("span", "n", counts[id]));
      frag.appendChild(b);
    }
    tabs.replaceChildren(frag);
    renderTab(m);
    if (wasHidden) { lastRange = ""; schedule(); }
  }
  $("d-tabs").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-tab]");
    if (!b || !state.selected) return;
    state.tab = b.dataset.tab;
    for (const x of $("d-tabs").children) x.classList.toggle("on", x === b);
    renderTab(state.selected);
  });
  function renderTab(m) {
    const body = $("d-body");
    const box = document.createDocumentFragment();
    try {
      ({ headers: tabHeaders, payload: tabPayload, response: tabResponse, cookies: tabCookies, timing: tabTiming, initiator: tabInitiator }[state.tab] || tabHeaders)(box, m);
    } catch (err) {
      box.appendChild(el("p", "err", "Could not show this part of the entry: " + err.message));
    }
    body.replaceChildren(box);
    body.scrollTop = 0;
  }

  function h3(box, text) { box.appendChild(el("h3", "", text)); }
  function note(box, text) { box.appendChild(el("p", "note", text)); }
  function kvTable(rows) {
    const t = el("table", "kv");
    const tb = el("tbody");
    for (const [k, v] of rows) {
      const tr = el("tr");
      tr.appendChild(el("th", "", k));
      const td = el("td");
      if (v instanceof Node) td.appendChild(v); else td.textContent = str(v);
      tr.appendChild(td);
      tb.appendChild(tr);
    }
    t.appendChild(tb);
    return t;
  }
  function gridTable(cols, rows) {
    const t = el("table", "grid");
    const th = el("thead"), tr = el("tr");
    for (const c of cols) tr.appendChild(el("th", "", c));
    th.appendChild(tr);
    t.appendChild(th);
    const tb = el("tbody");
    for (const r of rows) {
      const row = el("tr");
      for (const c of r) row.appendChild(el("td", "", str(c)));
      tb.appendChild(row);
    }
    t.appendChild(tb);
    return t;
  }
  function nvSection(box, title, list) {
    h3(box, title + " (" + list.length + ")");
    if (!list.length) { note(box, "None."); return; }
    box.appendChild(kvTable(list.map((h) => [str(obj(h).name), str(obj(h).value)])));
  }

  function tabHeaders(box, m) {
    const e = m.e, req = obj(e.request), resp = obj(e.response);
    h3(box, "General");
    const rows = [["URL", m.url], ["Method", m.method]];
    if (m.failed) {
      const s = el("span", "err", m.error || "no response");
      rows.push(["Status", m.status > 0 ? m.status + " " + m.statusText : "failed"]);
      rows.push(["Error", s]);
    } else {
      const s = el("span", "s" + m.cls, (m.status + " " + m.statusText).trim());
      rows.push(["Status", s]);
    }
    if (m.redirect) rows.push(["Redirect to", m.redirect]);
    const hv = str(resp.httpVersion) || str(req.httpVersion);
    if (hv) rows.push(["HTTP version", hv]);
    if (e.serverIPAddress) rows.push(["Remote address", str(e.serverIPAddress) + (e.connection ? "  (connection " + str(e.connection) + ")" : "")]);
    if (e.startedDateTime) rows.push(["Started", str(e.startedDateTime) + (hasTime && isFinite(m.start) ? "  (+" + fmtMs(m.start - t0) + ")" : "")]);
    rows.push(["Time", fmtMs(m.time)]);
    rows.push(["Size", "on the wire " + fmtBytes(m.wire) + ", decoded " + fmtBytes(m.decoded)]);
    rows.push(["Type", m.type]);
    if (m.incoming) rows.push(["Direction", "incoming (served by this program)"]);
    else if (e._direction) rows.push(["Direction", str(e._direction)]);
    if (m.pid) rows.push(["Process", "pid " + m.pid + (m.child ? " (child process)" : "")]);
    if (m.page) rows.push(["Page", m.page]);
    if (e.comment) rows.push(["Comment", str(e.comment)]);
    box.appendChild(kvTable(rows));
    nvSection(box, "Response headers", arr(resp.headers));
    nvSection(box, "Request headers", arr(req.headers));
  }

  function tabPayload(box, m) {
    const req = obj(m.e.request);
    const qs = arr(req.queryString);
    h3(box, "Query string (" + qs.length + ")");
    if (qs.length) box.appendChild(kvTable(qs.map((q) => [str(obj(q).name), str(obj(q).value)])));
    else note(box, "No query string.");
    h3(box, "Request body");
    if (!isObj(req.postData)) {
      const bs = num(req.bodySize);
      note(box, bs > 0 ? "Body of " + fmtBytes(bs) + " not recorded." : "No request body.");
      return;
    }
    const pd = req.postData;
    const params = arr(pd.params);
    const ml = el("div", "meta-line");
    metaBit(ml, "type", str(pd.mimeType) || "unknown");
    if (num(req.bodySize) >= 0) metaBit(ml, "size", fmtBytes(req.bodySize));
    box.appendChild(ml);
    if (params.length) {
      box.appendChild(gridTable(["Name", "Value", "File name", "Content type"], params.map((p0) => {
        const p = obj(p0);
        return [p.name, p.value, p.fileName, p.contentType];
      })));
      if (typeof pd.text === "string" && pd.text) h3(box, "Raw body");
      else return;
    }
    const enc = str(pd.encoding || pd._encoding).toLowerCase();
    renderBody(box, { text: pd.text, encoding: enc, mimeType: pd.mimeType, size: num(req.bodySize) }, false);
  }

  function metaBit(line, k, v) {
    const s = el("span", "", k + " ");
    s.appendChild(el("b", "", v));
    line.appendChild(s);
  }

  function tabResponse(box, m) {
    const resp = obj(m.e.response);
    const content = obj(resp.content);
    if (m.failed && m.error) box.appendChild(el("p", "err", m.error));
    const ml = el("div", "meta-line");
    metaBit(ml, "type", str(content.mimeType) || "unknown");
    metaBit(ml, "decoded", fmtBytes(num(content.size)));
    metaBit(ml, "on the wire", fmtBytes(m.wire));
    if (content.encoding) metaBit(ml, "encoding", str(content.encoding));
    if (num(content.compression) > 0) metaBit(ml, "compression saved", fmtBytes(content.compression));
    box.appendChild(ml);
    if (content.comment) note(box, str(content.comment));
    renderBody(box, content, true);
  }

  function b64Bytes(s, maxBytes) {
    let t = s;
    if (maxBytes !== undefined) {
      const need = Math.ceil(maxBytes / 3) * 4;
      t = s.slice(0, need + 256).replace(/\s+/g, "").slice(0, need);
    } else if (/\s/.test(t)) t = t.replace(/\s+/g, "");
    if (t.length % 4 === 1) t = t.slice(0, -1);
    const bin = atob(t);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return maxBytes !== undefined ? out.subarray(0, maxBytes) : out;
  }
  function looksText(bytes) {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0 || (b < 32 && b !== 9 && b !== 10 && b !== 13 && b !== 12 && b !== 27)) return false;
    }
    try { new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: true }); return true; } catch (e) { return false; }
  }
  function hexDump(bytes) {
    const lines = [];
    for (let off = 0; off < bytes.length; off += 16) {
      const row = bytes.subarray(off, off + 16);
      let hex = "", asc = "";
      for (let i = 0; i < 16; i++) {
        if (i === 8) hex += " ";
        if (i < row.length) {
          hex += (row[i] < 16 ? "0" : "") + row[i].toString(16) + " ";
          asc += row[i] >= 32 && row[i] < 127 ? String.fromCharCode(row[i]) : ".";
        } else hex += "   ";
      }
      lines.push(off.toString(16).padStart(8, "0") + "  " + hex + " |" + asc + "|");
    }
    return lines.join("\n");
  }

  function renderBody(box, content, isResponse) {
    const text = content.text;
    const enc = str(content.encoding).toLowerCase();
    const mime = baseMime(content.mimeType);
    const size = num(content.size);
    if (typeof text !== "string") {
      note(box, size > 0 ? "The body (" + fmtBytes(size) + ") was not recorded." : "No body recorded.");
      return;
    }
    if (text === "") { note(box, "Empty body."); return; }
    const b64 = enc === "base64";
    if (isResponse && /^image\/[a-z0-9.+-]+$/.test(mime) && (!b64 || /^[A-Za-z0-9+/=\s]*$/.test(text.slice(0, 4096)))) {
      const wrap = el("div", "img-box");
      const img = el("img");
      img.alt = "response image";
      const info = el("p", "note", "");
      img.addEventListener("load", () => { info.textContent = img.naturalWidth + " \u00D7 " + img.naturalHeight + " px"; });
      img.addEventListener("error", () => { info.textContent = "The image could not be decoded."; });
      if (b64) img.src = "data:" + mime + ";base64," + text.replace(/\s+/g, "");
      else img.src = URL.createObjectURL(new Blob([text], { type: mime }));
      wrap.appendChild(img);
      box.appendChild(wrap);
      box.appendChild(info);
      return;
    }
    let bodyText = text;
    if (b64) {
      let head;
      try { head = b64Bytes(text, 256); } catch (err) {
        box.appendChild(el("p", "err", "The body is marked base64 but does not decode: " + err.message));
        showText(box, text, "");
        return;
      }
      const textual = mime ? isTextMime(mime) && looksText(head) : looksText(head);
      if (!textual) {
        const total = size >= 0 ? size : Math.floor(text.replace(/\s+/g, "").replace(/=+$/, "").length * 3 / 4);
        note(box, "Binary body, " + fmtBytes(total) + (mime ? " (" + mime + ")" : "") + ". First " + head.length + " bytes:");
        box.appendChild(el("pre", "body hex", hexDump(head)));
        return;
      }
      try { bodyText = new TextDecoder("utf-8").decode(b64Bytes(text)); } catch (err) {
        box.appendChild(el("p", "err", "The body does not decode: " + err.message));
        return;
      }
    }
    showText(box, bodyText, mime);
  }

  // Valid JSON laid out two spaces a level, its numbers as written: going through
  // JSON.parse would show 1234567890123456789 as 1234567890123456800 and 1.10 as 1.1.
  // Strings are shown as JSON.stringify writes them (\u00e9 as the letter it stands for).
  function reindentJSON(text) {
    const out = [];
    const n = text.length;
    let depth = 0, i = 0;
    const newline = (d) => "\n" + "  ".repeat(d);
    const space = (c) => c === " " || c === "\t" || c === "\n" || c === "\r";
    while (i < n) {
      const c = text[i];
      if (space(c)) { i++; continue; }
      if (c === '"') {
        let j = i + 1;
        while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
        out.push(JSON.stringify(JSON.parse(text.slice(i, j + 1))));
        i = j + 1;
      } else if (c === "{" || c === "[") {
        let j = i + 1;
        while (space(text[j])) j++;
        if (text[j] === (c === "{" ? "}" : "]")) { out.push(c + text[j]); i = j + 1; continue; }
        depth++;
        out.push(c + newline(depth));
        i++;
      } else if (c === "}" || c === "]") {
        depth--;
        out.push(newline(depth) + c);
        i++;
      } else if (c === ",") {
        out.push("," + newline(depth));
        i++;
      } else if (c === ":") {
        out.push(": ");
        i++;
      } else {  // a number, true, false or null, as written
        let j = i;
        while (j < n && !space(text[j]) && ",]}:".indexOf(text[j]) < 0) j++;
        out.push(text.slice(i, j));
        i = j;
      }
    }
    return out.join("");
  }

  function showText(box, text, mime) {
    const jsonish = mime.includes("json") || /^\s*[[{]/.test(text.slice(0, 64));
    if (jsonish && text.length <= PRETTY_LIMIT) {
      let pretty = null;
      try { JSON.parse(text); pretty = reindentJSON(text); } catch (e) { pretty = null; }
      if (pretty !== null) {
        const pre = el("pre", "body json");
        if (pretty.length <= HILITE_LIMIT) { hiliteJSON(pre, pretty); box.appendChild(pre); }
        else appendLimited(box, pre, pretty);
        return;
      }
    }
    appendLimited(box, el("pre", "body"), text);
  }
  function appendLimited(box, pre, text) {
    box.appendChild(pre);
    if (text.length <= TEXT_LIMIT) { pre.textContent = text; return; }
    pre.textContent = text.slice(0, TEXT_LIMIT);
    const more = el("button", "more", "Show all " + fmtBytes(text.length) + " (" + fmtBytes(text.length - TEXT_LIMIT) + " more)");
    more.type = "button";
    more.addEventListener("click", () => { pre.textContent = text; more.remove(); });
    box.appendChild(more);
  }
  const JSON_TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  function hiliteJSON(pre, s) {
    let last = 0, m;
    const frag = document.createDocumentFragment();
    JSON_TOKEN.lastIndex = 0;
    while ((m = JSON_TOKEN.exec(s)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(s.slice(last, m.index)));
      if (m[1] !== undefined) {
        frag.appendChild(el("span", m[2] !== undefined ? "j-k" : "j-s", m[1]));
        if (m[2] !== undefined) frag.appendChild(document.createTextNode(m[2]));
      } else if (m[3] !== undefined) frag.appendChild(el("span", "j-b", m[3]));
      else frag.appendChild(el("span", "j-n", m[4]));
      last = JSON_TOKEN.lastIndex;
    }
    if (last < s.length) frag.appendChild(document.createTextNode(s.slice(last)));
    pre.appendChild(frag);
  }

  function cookieSection(box, title, list) {
    h3(box, title + " (" + list.length + ")");
    if (!list.length) { note(box, "None."); return; }
    box.appendChild(gridTable(["Name", "Value", "Domain", "Path", "Expires", "HttpOnly", "Secure", "SameSite"], list.map((c0) => {
      const c = obj(c0);
      return [c.name, c.value, c.domain, c.path, c.expires, c.httpOnly === undefined ? "" : c.httpOnly ? "\u2713" : "", c.secure === undefined ? "" : c.secure ? "\u2713" : "", c.sameSite];
    })));
  }
  function tabCookies(box, m) {
    cookieSection(box, "Request cookies", arr(obj(m.e.request).cookies));
    cookieSection(box, "Response cookies", arr(obj(m.e.response).cookies));
  }

  function tabTiming(box, m) {
    const t = obj(m.e.timings);
    h3(box, "Timing");
    const tbl = el("table", "grid timing");
    const thead = el("thead"), hr = el("tr");
    for (const c of ["Phase", "Duration", ""]) hr.appendChild(el("th", c === "Duration" ? "r" : "", c));
    thead.appendChild(hr);
    tbl.appendChild(thead);
    const tb = el("tbody");
    const total = Math.max(m.time, 0.0001);
    let offset = 0;
    for (const p of PHASES) {
      const v = num(t[p]);
      const tr = el("tr");
      const name = el("td");
      const sw = el("span", "sw p-" + p);
      sw.style.marginRight = "8px";
      name.appendChild(sw);
      name.appendChild(document.createTextNode(PHASE_LABEL[p] + (p === "ssl" ? " (part of connect)" : "")));
      tr.appendChild(name);
      tr.appendChild(el("td", "r", v >= 0 ? fmtMs(v) : "\u2014"));
      const bc = el("td");
      const tbar = el("div", "tbar");
      if (v > 0) {
        const seg = el("span", "p-" + p);
        const start = p === "ssl" ? offset - v : offset;
        seg.style.left = Math.max(0, (start / total) * 100) + "%";
        seg.style.width = Math.min(100, (v / total) * 100) + "%";
        tbar.appendChild(seg);
      }
      if (v > 0 && p !== "ssl") offset += v;
      bc.appendChild(tbar);
      tr.appendChild(bc);
      tb.appendChild(tr);
    }
    const trT = el("tr");
    trT.appendChild(el("td", "", "Total"));
    const tt = el("td", "r", fmtMs(m.time));
    tt.style.fontWeight = "600";
    trT.appendChild(tt);
    trT.appendChild(el("td"));
    tb.appendChild(trT);
    tbl.appendChild(tb);
    box.appendChild(tbl);
    const extra = Object.keys(t).filter((k) => !PHASES.includes(k) && k !== "comment");
    if (extra.length) {
      h3(box, "Other timings");
      box.appendChild(kvTable(extra.map((k) => [k, typeof t[k] === "number" ? fmtMs(t[k]) : str(t[k])])));
    }
    if (hasTime && isFinite(m.start)) note(box, "Started " + fmtMs(m.start - t0) + " after the first request.");
  }

  function frameLine(f0) {
    const f = obj(f0);
    let url = str(f.url);
    if (url.startsWith("file://")) {
      url = url.slice(7);
      try { url = decodeURI(url); } catch (e) { /* keep as is */ }
    }
    const line = num(f.lineNumber);
    const li = el("li");
    li.appendChild(document.createTextNode((url || "(unknown)") + (line >= 0 ? ":" + (line + 1) : "")));
    if (f.functionName) li.appendChild(el("span", "fn", str(f.functionName)));
    return li;
  }
  function tabInitiator(box, m) {
    const ini = m.e._initiator;
    if (!isObj(ini)) { note(box, "No initiator recorded."); return; }
    if (ini.type) box.appendChild(kvTable([["Type", str(ini.type)]]));
    let stack = obj(ini.stack);
    let depth = 0;
    if (!arr(stack.callFrames).length && !isObj(stack.parent)) { note(box, "No call stack recorded."); return; }
    while (isObj(stack) && depth < 50) {
      const frames = arr(stack.callFrames);
      h3(box, stack.description ? str(stack.description) : depth === 0 ? "Call stack" : "Async caller");
      const ol = el("ol", "frames");
      for (const f of frames) ol.appendChild(frameLine(f));
      box.appendChild(ol);
      stack = stack.parent;
      depth++;
    }
  }

  // ---------- boot ----------
  const titleText = str(meta.title) || "HAR report";
  $("title").textContent = titleText;
  buildSummary();
  buildFilters();
  buildLegend();
  buildHeader();
  rebuild();
  list.focus({ preventScroll: true });
  const loadMs = performance.now() - T0;
  window.harlemReport = {
    entryCount: models.length,
    get rowCount() { return shownCount; },
    get selectedIndex() { return state.selected ? state.selected.i : -1; },
    loadMs,
  };
  document.documentElement.dataset.ready = "1";
})();
