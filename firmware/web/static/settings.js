// The settings page: every key of /api/v1/config as a field, secrets write-only,
// errors next to their field, the MQTT connection test, login and first setup.
"use strict";
const $ = (id) => document.getElementById(id);
const SECRET = ["wifi.password", "wifi.ap_password", "mqtt.password"];
const HIDDEN = ["admin"];
let cfg = null;
let mode = "login"; // or "setup"

async function api(method, path, body) {
  const opt = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  let d = null;
  try { d = await r.json(); } catch (e) { d = null; }
  return { status: r.status, data: d };
}

function say(text, kind) {
  const m = $("msg");
  m.textContent = text;
  m.className = "banner " + (kind || "");
  m.hidden = !text;
}

function showLogin(setup, note) {
  mode = setup ? "setup" : "login";
  $("lh").textContent = setup ? "Set the admin password" : "Log in";
  $("lp").textContent = note || (setup ? "No admin password is set yet: choose one (8 to 64 characters) before changing settings." : "");
  $("lb").textContent = setup ? "Set password" : "Log in";
  $("pw").autocomplete = setup ? "new-password" : "current-password";
  $("pw").value = "";
  $("pwerr").textContent = "";
  $("login").hidden = false;
}

function field(sec, key, v) {
  const name = sec + "." + key;
  const row = document.createElement("label");
  row.className = "field";
  const cap = document.createElement("span");
  cap.textContent = key.replace(/_/g, " ");
  const inp = document.createElement("input");
  inp.name = name;
  inp.id = "f-" + name.replace(".", "-");
  if (typeof v === "boolean") {
    inp.type = "checkbox";
    inp.checked = v;
  } else if (typeof v === "number") {
    inp.type = "number";
    inp.step = "1";
    inp.value = String(v);
  } else if (SECRET.includes(name)) {
    inp.type = "password";
    inp.autocomplete = "new-password";
    inp.placeholder = v === "***" ? "set (unchanged)" : "not set";
    inp.dataset.set = v === "***" ? "1" : "";
  } else {
    inp.type = "text";
    inp.value = v;
  }
  const err = document.createElement("span");
  err.className = "err";
  err.dataset.for = name;
  row.append(cap, inp, err);
  return row;
}

function render() {
  const box = $("sections");
  box.textContent = "";
  for (const sec of Object.keys(cfg)) {
    if (HIDDEN.includes(sec)) continue;
    const card = document.createElement("fieldset");
    card.className = "card";
    const h = document.createElement("legend");
    h.textContent = sec;
    card.append(h);
    const v = cfg[sec];
    if (v !== null && typeof v === "object") {
      for (const k of Object.keys(v)) card.append(field(sec, k, v[k]));
    } else {
      card.append(field(sec, "", v));
    }
    box.append(card);
  }
  const ssid = $("f-wifi-ssid");
  if (ssid) ssid.setAttribute("list", "ssids");
  $("cfg").hidden = false;
}

function collect(only) {
  const out = {};
  for (const inp of $("sections").querySelectorAll("input")) {
    const [sec, key] = inp.name.split(".");
    if (only && sec !== only) continue;
    let v;
    if (inp.type === "checkbox") v = inp.checked;
    else if (inp.type === "number") v = inp.value === "" ? NaN : Number(inp.value);
    else if (inp.type === "password") v = inp.value || (inp.dataset.set ? "***" : "");
    else v = inp.value;
    if (key) (out[sec] = out[sec] || {})[key] = v;
    else out[sec] = v;
  }
  return out;
}

function showErrors(errs) {
  for (const e of document.querySelectorAll(".err[data-for]")) e.textContent = "";
  let n = 0;
  for (const [name, why] of Object.entries(errs || {})) {
    const e = document.querySelector('.err[data-for="' + name + '"]') ||
      document.querySelector('.err[data-for^="' + name + '."]');
    if (e) e.textContent = why;
    n++;
  }
  return n;
}

async function load() {
  const r = await api("GET", "/api/v1/config");
  if (r.status === 401) {
    $("cfg").hidden = true;
    $("logout").hidden = true;
    showLogin(false);
    return;
  }
  if (r.status !== 200) { say("Cannot read the settings (" + r.status + ")", "bad"); return; }
  cfg = r.data;
  const setup = cfg.admin && cfg.admin.password_hash === "";
  $("login").hidden = !setup;
  if (setup) showLogin(true);
  $("logout").hidden = setup;
  render();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const path = mode === "setup" ? "/api/v1/password" : "/api/v1/login";
  const r = await api("POST", path, { password: $("pw").value });
  if (r.status === 200) {
    $("login").hidden = true;
    say(mode === "setup" ? "Admin password set." : "", "");
    await load();
  } else {
    const d = r.data || {};
    $("pwerr").textContent = (d.errors && d.errors.password) || d.error || "refused (" + r.status + ")";
  }
});

$("cfg").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await api("PATCH", "/api/v1/config", collect());
  if (r.status === 200) {
    showErrors({});
    const d = r.data;
    let t = "Saved.";
    if (d.applied.length) t += " Applied now: " + d.applied.join(", ") + ".";
    if (d.reboot.length) t += " After a reboot: " + d.reboot.join(", ") + ".";
    say(t, "");
    await load();
    say(t, "");
  } else if (r.status === 422) {
    showErrors(r.data.errors);
    say("Not saved: check the fields marked in red.", "bad");
  } else if (r.status === 401) {
    say("Log in again to save.", "warn");
    showLogin(false);
  } else {
    say((r.data && r.data.error) || "Not saved (" + r.status + ")", "bad");
  }
});

$("mtest").addEventListener("click", async () => {
  $("mres").textContent = "testing…";
  const r = await api("POST", "/api/v1/mqtt/test", collect("mqtt").mqtt);
  if (r.status === 200) {
    $("mres").textContent = (r.data.ok ? "OK: " : "Failed: ") + r.data.answer;
  } else {
    if (r.status === 422) showErrors(r.data.errors);
    $("mres").textContent = (r.data && r.data.error) || (r.status === 422 ? "check the MQTT fields" : "refused (" + r.status + ")");
  }
});

$("scan").addEventListener("click", async () => {
  $("mres").textContent = "scanning…";
  const r = await api("GET", "/api/v1/wifi/scan");
  if (r.status !== 200) {
    $("mres").textContent = (r.data && r.data.error) || "scan refused (" + r.status + ")";
    return;
  }
  const dl = $("ssids");
  dl.textContent = "";
  for (const n of r.data.networks) {
    const o = document.createElement("option");
    o.value = n.ssid;
    o.label = n.rssi + " dBm" + (n.secure ? "" : ", open");
    dl.append(o);
  }
  $("mres").textContent = r.data.networks.length + " networks: pick one in the ssid field";
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/v1/logout", {});
  say("Logged out.", "");
  await load();
});

load();
