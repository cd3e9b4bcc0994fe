// Live page of the P1 dongle. No framework; data only ever goes in as textContent.
"use strict";
(() => {
  const STALE_S = 30, POLL_MS = 10000, $ = (id) => document.getElementById(id);

  // Exact JSON: every number stays the text the dongle wrote (0.000, 896.020).
  let viaSource = false;
  try {
    viaSource = JSON.parse("[0.10]", (k, v, c) => (c && c.source) || v)[0] === "0.10";
  } catch (e) { /* no source text: tokenizer below */ }
  const quoteNumbers = (t) => t.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (m) => (m[0] === '"' ? m : '"' + m + '"'));
  const parseExact = (t) => viaSource
    ? JSON.parse(t, (k, v, c) => (typeof v === "number" ? c.source : v))
    : JSON.parse(quoteNumbers(t));

  // a - b on decimal texts, exactly, signed: "+0.581", "−0.250", "0.000"
  const dec = (s) => {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s), f = m ? m[3] || "" : "";
    return m && { n: (m[1] ? -1 : 1) * Number(m[2] + f), d: f.length };
  };
  function minus(a, b) {
    const x = dec(a), y = dec(b);
    if (!x || !y) return null;
    const d = Math.max(x.d, y.d), v = x.n * 10 ** (d - x.d) - y.n * 10 ** (d - y.d);
    let t = String(Math.abs(v)).padStart(d + 1, "0");
    if (d) t = t.slice(0, -d) + "." + t.slice(-d);
    return { text: (v > 0 ? "+" : v < 0 ? "\u2212" : "") + t, sign: Math.sign(v) };
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  const show = (e, on) => { e.hidden = !on; };
  const key = (e, k) => { if (k) e.setAttribute("data-k", k); return e; };
  function item(dl, label, value, unit, k, note) {
    const row = el("div", null, String(value).length > 15 ? "wide" : ""), dd = el("dd");
    row.append(el("dt", label), dd);
    dd.append(key(el("span", value == null || value === "" ? "\u2013" : value, "v"), k));
    if (unit) dd.append(el("small", " " + unit));
    if (note) dd.append(el("div", note, "note"));
    dl.append(row);
  }
  const dur = (s) => {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
  };
  const group = (n) => String(n).replace(/\B(?=(\d{3})+$)/g, "\u202f");
  const when = (ts) => ts.replace("T", " ");
  const hexText = (s) => { // DSMR sends ids as hex ASCII
    const b = /^([0-9A-F]{2})+$/i.test(s) ? s.match(/../g).map((h) => parseInt(h, 16)) : [0];
    return b.every((c) => c > 31 && c < 127) ? String.fromCharCode(...b) : s;
  };

  // ---- the reading
  const PH = [["voltage_v", "Voltage", "V"], ["current_a", "Current", "A"],
    ["power_import_kw", "Import", "kW"], ["power_export_kw", "Export", "kW"],
    ["reactive_power_import_kvar", "Reactive import", "kvar"],
    ["reactive_power_export_kvar", "Reactive export", "kvar"]];
  const REG = [["energy_import_kwh", "Energy import", "kWh"], ["energy_export_kwh", "Energy export", "kWh"],
    ["energy_import_t1_kwh", "Import, tariff 1", "kWh"], ["energy_import_t2_kwh", "Import, tariff 2", "kWh"],
    ["energy_export_t1_kwh", "Export, tariff 1", "kWh"], ["energy_export_t2_kwh", "Export, tariff 2", "kWh"],
    ["reactive_energy_import_kvarh", "Reactive import", "kvarh"],
    ["reactive_energy_export_kvarh", "Reactive export", "kvarh"],
    ["gas_m3", "Gas", "m\u00b3", "gas_timestamp"], ["water_m3", "Water", "m\u00b3", "water_timestamp"],
    ["heat_gj", "Heat", "GJ", "heat_timestamp"], ["tariff", "Active tariff"],
    ["power_failures", "Power failures"], ["long_power_failures", "Long power failures"],
    ["breaker_state", "Breaker state"], ["text_message", "Message"]];
  const IDS = [["dsmr_version", "DSMR version"], ["equipment_id", "Equipment ID"], ["meter_serial", "Meter serial"]];
  const KNOWN = /^(timestamp|meter|age_s|(reactive_)?power_(im|ex)port_(kw|kvar)|l\d_\w+|\w+_timestamp)$/;
  let last = null, gotAt = 0;

  function render(r) {
    last = r;
    gotAt = Date.now();
    show($("waiting"), false);
    $("meter").textContent = r.meter;
    const imp = r.power_import_kw, exp = r.power_export_kw, n = minus(imp, exp);
    const sign = n ? n.sign : imp != null ? 1 : 0;
    $("net").textContent = n ? n.text : imp != null ? "+" + imp : exp != null ? "\u2212" + exp : "\u2013";
    $("now").setAttribute("data-flow", ["export", "zero", "import"][sign + 1]);
    $("flow").textContent = ["Exporting to the grid", "Net power", "Importing from the grid"][sign + 1];
    const split = $("split");
    split.textContent = "";
    if (n) split.append("import ", key(el("span", imp, "v"), "power_import_kw"),
      " kW \u00b7 export ", key(el("span", exp, "v"), "power_export_kw"), " kW");
    const ts = $("ts");
    ts.dateTime = r.timestamp || "";
    ts.textContent = when(r.timestamp || "no time stamp");
    show($("now"), true);

    // phases: only the quantities and phases the meter sends, totals last
    const has = (p) => PH.some((q) => r[p + q[0]] != null);
    const cols = ["l1_", "l2_", "l3_", ""].filter(has);
    const table = $("ptable"), head = table.tHead, body = table.tBodies[0];
    head.textContent = body.textContent = "";
    head.insertRow().append(el("th"), ...cols.map((p) => el("th", p ? p.slice(0, 2).toUpperCase() : "Total")));
    for (const [q, label, unit] of PH) {
      if (!cols.some((p) => p && r[p + q] != null)) continue;
      const tr = body.insertRow(), th = el("th", label + " ");
      th.append(el("small", unit));
      tr.append(th, ...cols.map((p) => (r[p + q] == null ? el("td") : key(el("td", r[p + q]), p + q))));
    }
    show($("phases"), body.rows.length > 0);

    // registers, then whatever the page has no place for yet
    const dl = $("cum"), ids = $("ids"), seen = {};
    dl.textContent = ids.textContent = "";
    for (const [k, label, unit, at] of REG) {
      seen[k] = 1;
      if (r[k] != null && r[k] !== "") item(dl, label, r[k], unit, k, at && r[at] ? "at " + when(r[at]) : "");
    }
    for (const w of ["sags", "swells"]) {
      const vs = [1, 2, 3].map((i) => r[`l${i}_voltage_${w}`]).filter((v) => v != null);
      if (vs.length) item(dl, `Voltage ${w} L1\u00b7L2\u00b7L3`, vs.join(" \u00b7 "));
    }
    for (const [k, label] of IDS) {
      seen[k] = 1;
      if (r[k]) item(ids, label, k === "equipment_id" ? hexText(r[k]) : r[k], "", k);
    }
    for (const k in r) if (!seen[k] && !KNOWN.test(k) && r[k] !== "") item(dl, k.replace(/_/g, " "), r[k], "", k);
    show($("counters"), dl.children.length + ids.children.length > 0);
    addPoint(r);
    fuseBars(r);
    periodic(r);
    tick();
    if ($("rawbox").open) loadRaw();
  }

  function tick() {
    if (!last) return;
    const age = (Number(last.age_s) || 0) + Math.max(0, Math.floor((Date.now() - gotAt) / 1000));
    const stale = age > STALE_S;
    $("age").textContent = dur(age) + " ago";
    document.body.classList.toggle("stale", stale);
    $("stale").textContent = stale ? `Stale: no telegram from the meter for ${dur(age)}. ` +
      `The values below are from ${$("ts").textContent}.` : "";
    show($("stale"), stale);
  }

  // ---- charts: a few lines of our own SVG, no library
  const NS = "http://www.w3.org/2000/svg";
  function svg(tag, a, parent) {
    const e = document.createElementNS(NS, tag);
    for (const k in a) e.setAttribute(k, a[k]);
    if (parent) parent.append(e);
    return e;
  }
  const watts = (kw) => { const x = kw != null && dec(kw); return x ? Math.round(x.n * 10 ** (3 - x.d)) : null; };
  const kwh = (wh) => { const t = String(wh).padStart(4, "0"); return t.slice(0, -3) + "." + t.slice(-3); };

  // the last minutes' net power, kept here (the dongle keeps only the latest reading)
  const ROLL_S = 600, roll = [];
  function addPoint(r) {
    const t = r.timestamp ? Date.parse(r.timestamp) : Date.now();
    const w = (watts(r.power_import_kw) || 0) - (watts(r.power_export_kw) || 0);
    const end = roll.length ? roll[roll.length - 1][0] : 0;
    if (t === end) return; // the same reading again (poll and stream)
    if (t < end) roll.length = 0; // the meter's clock went back: start again
    roll.push([t, w]);
    while (roll[0][0] < t - ROLL_S * 1000) roll.shift();
    const g = $("roll"), W = 300, H = 90, ws = roll.map((p) => p[1]), lo = Math.min(0, ...ws), hi = Math.max(1, ...ws);
    const y = (v) => (H - 4 - (v - lo) * (H - 8) / (hi - lo)).toFixed(1);
    const x = (tt) => (W - (t - tt) / 1000 / ROLL_S * W).toFixed(1);
    g.textContent = "";
    svg("line", { x1: 0, x2: W, y1: y(0), y2: y(0), class: "axis" }, g);
    svg("polyline", { points: roll.map((p) => x(p[0]) + "," + y(p[1])).join(" "), class: "line" }, g);
    $("rollr").textContent = `${lo} \u2013 ${hi} W`;
    g.dataset.n = roll.length;
    show($("chart"), true);
  }

  // each phase's current against the main fuse (config loads.fuse_a)
  let fuse = 0;
  function fuseBars(r) {
    const box = $("fbars");
    box.textContent = "";
    for (const i of [1, 2, 3]) {
      const a = r[`l${i}_current_a`];
      if (a == null || !fuse) continue;
      const pct = Math.min(100, Number(a) * 100 / fuse), row = el("div", null, "fbar");
      const g = svg("svg", { viewBox: "0 0 100 8", preserveAspectRatio: "none" });
      svg("rect", { width: 100, height: 8, class: "track" }, g);
      svg("rect", { width: pct.toFixed(2), height: 8, class: pct >= 100 ? "bad" : pct >= 80 ? "warn" : "ok" }, g);
      g.dataset.pct = pct.toFixed(2);
      row.dataset.phase = "l" + i;
      row.append(el("span", `L${i} ${a} A`), g);
      box.append(row);
    }
    $("fusea").textContent = fuse ? `main fuse ${fuse} A` : "";
    show($("fuse"), box.children.length > 0);
  }

  // the power tariff's running averages (GET /api/v1/tariff: once a minute and at each quarter hour)
  let tfAt = 0, tfQ = "";
  function loadTariff() {
    tfAt = Date.now();
    get("/api/v1/tariff", "text").then((t) => {
      const d = parseExact(t), dl = $("tariff");
      dl.textContent = "";
      for (const [p, name] of [["hour", "This hour"], ["15min", "This quarter"]]) {
        const x = d[p] || {};
        item(dl, name + ": average", x.average_w, "W", `tariff_${p}_average_w`, "since " + (x.start || "").slice(11));
        item(dl, name + ": heading for", x.projected_w, "W", `tariff_${p}_projected_w`);
      }
      item(dl, "Month's tariff power", d.tariff_w, "W", "tariff_w",
        d.counts_now === true ? "this period counts" : "this period does not count");
      show($("tariffbox"), true);
    }, () => show($("tariffbox"), false));
  }

  // daily and monthly energy as bars (GET /api/v1/history: at start, then every 10 minutes)
  let hiAt = 0;
  function bars(g, periods) {
    const W = 300, H = 100, bw = W / Math.max(periods.length, 1), num = (v) => (v == null ? 0 : Number(v));
    const best = Math.max(0, ...periods.map((p) => num(p.import_wh))), top = Math.max(1, best);
    const bot = Math.max(0, ...periods.map((p) => num(p.export_wh))), mid = H * top / (top + bot), k = H / (top + bot);
    const f = (v) => v.toFixed(1);
    g.textContent = "";
    periods.forEach((p, i) => {
      const ok = p.status === "ok", b = svg("g", { "data-start": p.start, "data-status": p.status }, g);
      if (ok) {
        b.setAttribute("data-import-wh", p.import_wh);
        b.setAttribute("data-export-wh", p.export_wh);
      }
      const hi = ok ? num(p.import_wh) * k : 2, lo = ok ? num(p.export_wh) * k : 0; // (a gap: a grey stub)
      const x = f(i * bw + bw * 0.1), width = f(bw * 0.8);
      svg("rect", { x, y: f(mid - hi), width, height: f(hi), class: ok ? "imp" : "gap" }, b);
      svg("rect", { x, y: f(mid), width, height: f(lo), class: "exp" }, b);
      svg("title", {}, b).textContent = ok
        ? `${p.start}: import ${kwh(p.import_wh)} kWh, export ${kwh(p.export_wh)} kWh` : `${p.start}: ${p.status}`;
    });
    svg("line", { x1: 0, x2: W, y1: f(mid), y2: f(mid), class: "axis" }, g);
    const a = periods[0], z = periods[periods.length - 1], range = g.previousElementSibling.lastChild; // (h2 > small)
    range.textContent = a ? `${a.start} \u2013 ${z.start}, max ${kwh(best)} kWh` : "no data yet";
  }
  function loadHistory() {
    hiAt = Date.now();
    for (const res of ["day", "month"]) {
      get("/api/v1/history?resolution=" + res, "text").then((t) => {
        bars($(res + "s"), parseExact(t).periods);
        show($("energy"), true);
      }, () => { /* 503 before a time stamp: try again later */ });
    }
  }
  function periodic(r) { // the tariff once a minute and at each quarter hour, the history every 10 minutes
    if (!r.timestamp) return; // (no time stamp: no history either)
    const q = r.timestamp.slice(0, 14) + Math.floor(r.timestamp.slice(14, 16) / 15);
    if (Date.now() - tfAt > 60000 || q !== tfQ) { tfQ = q; loadTariff(); }
    if (Date.now() - hiAt > 600000) loadHistory();
  }

  // ---- dongle status
  const get = (url, as) => fetch(url, { cache: "no-store" }).then((res) => {
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res[as]();
  });
  let stLast = 0, stTimer = 0;
  function wantStatus() { // at most one status request per 3 s
    if (!stTimer) stTimer = setTimeout(() => { stTimer = 0; loadStatus(); }, Math.max(0, stLast + 3000 - Date.now()));
  }
  function loadStatus() {
    stLast = Date.now();
    return get("/api/v1/status", "text").then((t) => {
      const s = parseExact(t);
      renderStatus(s);
      if (!last) show($("waiting"), s.telegrams === "0");
      return s;
    }, () => null);
  }
  const ALARMS = {
    no_telegram: "no telegram from the meter for a while",
    crc_errors: "many telegrams fail their CRC check (cable, noise)",
    low_heap: "the dongle is low on memory",
    time_not_set: "the dongle's clock is not set",
  };
  function renderStatus(s) {
    fuse = Number(((s.config || {}).loads || {}).fuse_a) || 0;
    if (last) fuseBars(last);
    const dl = $("status"), w = s.wifi || {}, m = s.meter || {}, q = s.mqtt, mq = $("mqtt");
    dl.textContent = "";
    item(dl, "Firmware", s.version, "", "version");
    item(dl, "Board", s.board + (s.chip && s.chip !== s.board ? ` (${s.chip})` : ""), "", "board");
    item(dl, "Uptime", s.uptime_s != null ? dur(s.uptime_s) : null, "", "uptime");
    const wifi = [w.state || "?", w.ssid, w.ip, w.rssi != null && w.rssi + " dBm",
      w.ap && `access point ${w.ap.essid} ${w.ap.ip}`, w.error];
    item(dl, "Wi-Fi", wifi.filter((x) => x).join(" \u00b7 "), "", "wifi");
    item(dl, "Free heap", s.free_heap != null ? group(s.free_heap) : "n/a", s.free_heap != null && "bytes", "free_heap");
    item(dl, "Last reset", [s.reset_cause || "?", s.reset_reason, `boot ${s.boot_count}`].filter((x) => x).join(" \u00b7 "), "", "reset");
    item(dl, "Meter input", `${m.source || "?"} \u00b7 ${m.state || "?"}`, "", "source");

    const p = $("parser");
    p.textContent = "";
    for (const [k, label] of [["accepted", "Telegrams"], ["framer_crc_errors", "CRC errors"],
      ["framer_truncated", "Truncated"], ["framer_oversized", "Oversized"],
      ["framer_skipped_bytes", "Skipped bytes"], ["parse_errors", "Parse errors"], ["line_errors", "Bad lines"]]) {
      if (m[k] != null) item(p, label, group(m[k]), "", k);
    }
    if (m.last_error) item(p, "Last error", m.last_error, "", "last_error");

    mq.textContent = "";
    if (q && q.state) {
      item(mq, "State", q.state + (q.broker ? " \u00b7 " + q.broker : ""), "", "mqtt_state");
      item(mq, "Published", q.published, "", "mqtt_published");
      item(mq, "Queued", q.queued, "", "mqtt_queued");
      item(mq, "Dropped", q.dropped, "", "mqtt_dropped");
    }
    if (q && (q.last_error || q.error)) item(mq, "Error", q.last_error || q.error, "", "mqtt_error");
    show($("mqttbox"), mq.children.length > 0);

    const al = s.alarms || [], ab = $("alarms"); // health.py's alarm names
    ab.textContent = al.length ? "Alarm: " + al.map((a) => ALARMS[a] || a).join(" \u00b7 ") : "";
    ab.dataset.alarms = al.join(" ");
    show(ab, al.length > 0);

    const errs = [...(s.config_errors || []), ...(s.board_errors || [])], eb = $("errors");
    eb.textContent = "";
    if (errs.length) {
      const ul = el("ul");
      ul.append(...errs.map((e) => el("li", e)));
      eb.append(el("strong", "Configuration problems (defaults used instead):"), ul);
    }
    show(eb, errs.length > 0);
    $("log").replaceChildren(...(s.log || []).map((l) => el("li", l)));
  }

  // ---- raw telegram, byte for byte (ISO 8859-1)
  function loadRaw() {
    get("/api/v1/telegram", "arrayBuffer").then((b) => {
      $("raw").textContent = new TextDecoder("iso-8859-1").decode(b);
    }, () => { $("raw").textContent = "no telegram yet"; });
  }
  $("rawbox").addEventListener("toggle", () => { if ($("rawbox").open) loadRaw(); });

  // ---- live: Server-Sent Events (the browser reconnects), polling while they are down
  let es = null;
  function pill(state) {
    const p = $("live");
    p.setAttribute("data-state", state);
    p.textContent = state;
  }
  function connect() {
    if (!window.EventSource) return pill("polling"), poll();
    es = new EventSource("/api/v1/events");
    es.onopen = () => pill("live");
    es.addEventListener("reading", (e) => {
      pill("live");
      render(parseExact(e.data));
      wantStatus();
    });
    es.onerror = () => {
      if (es.readyState === 2) { // refused (e.g. too many clients): poll, try again later
        es = null;
        pill("polling");
        setTimeout(connect, 30000);
      } else pill("reconnecting");
      poll();
    };
  }
  function poll() {
    if (es && es.readyState === 1) return;
    loadStatus().then((s) => {
      if (!es) pill(s ? "polling" : "offline");
      if (s && s.telegrams !== "0") return get("/api/v1/reading", "text").then((t) => render(parseExact(t)));
    }).catch(() => { /* the next poll */ });
  }

  window.P1 = { parseExact, quoteNumbers, minus, viaSource, kwh, watts };
  loadStatus();
  connect();
  setInterval(poll, POLL_MS);
  setInterval(wantStatus, POLL_MS);
  setInterval(tick, 1000);
})();
