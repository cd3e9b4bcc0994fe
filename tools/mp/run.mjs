#!/usr/bin/env node
// Run Python under the WebAssembly build of MicroPython, in node.
//
//   node tools/mp/run.mjs [options] SCRIPT.py [args...]
//   node tools/mp/run.mjs [options] -c CODE [args...]
//   node tools/mp/run.mjs [options] -m MODULE [args...]
//
// Options (before SCRIPT / -c / -m):
//   --heap BYTES         MicroPython heap size (default 8 MiB; the heap still grows on demand)
//   --file HOSTPATH      copy a host file or directory into the MicroPython FS at the same
//                        absolute path (repeatable)
//   --stdin-file PATH    feed PATH to the script's sys.stdin (plain stdin works too)
//
// What the script sees:
//   - the repo's firmware/ and boards/ at their host absolute paths, firmware/ first on
//     sys.path; boards/ also at /boards (where the device keeps them); microdot's files
//     (from the repo's .venv) under /lib/microdot when present; host_tests/telegrams/ at
//     its host absolute path
//   - SCRIPT's directory second on sys.path, with its sibling *.py files copied in
//   - every argument naming an existing host file copied to the same absolute path
//   - the FS current directory equal to the host's, so relative paths resolve the same
//   - sys.argv like CPython: [SCRIPT, args...], ['-c', args...], [MODULE_FILE, args...]
// Scripts and -c code may use top-level `await` (this port has no asyncio.run).
// -m MODULE: a package runs MODULE.__main__. If that file defines a top-level `main`,
// it is imported and `main(sys.argv[1:])` is called, its return value being the exit code
// (None -> 0); otherwise the file's source runs with __name__ == "__main__".
//
// Output: stdout byte for byte, then stderr. Exit code: SystemExit's code (None -> 0,
// int -> int, other -> printed on stderr, 1), 1 on an uncaught exception (traceback on
// stderr), 2 on a usage error. An infinite loop cannot be interrupted from JS: callers
// must run this under a timeout.

import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const MAX_AUTO_COPY = 64 * 1024 * 1024;

function usage(msg) {
  if (msg) process.stderr.write(`run.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node tools/mp/run.mjs [--heap BYTES] [--file HOSTPATH ...] [--stdin-file PATH]\n" +
      "                            (SCRIPT.py | -c CODE | -m MODULE) [args...]\n",
  );
  process.exit(2);
}

// ---- arguments ----------------------------------------------------------------
const argv = process.argv.slice(2);
let heap = 8 * 1024 * 1024;
const files = [];
let stdinFile = null;
let mode = null;
let target = null;
let rest = [];
const rawOpts = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (a === "--heap") {
    heap = Number(val());
    if (!Number.isInteger(heap) || heap < 16384) usage("--heap takes a byte count >= 16384");
    rawOpts.push(a, String(heap));
  } else if (a === "--file") {
    const f = val();
    files.push(f);
    rawOpts.push(a, f);
  } else if (a === "--stdin-file") {
    stdinFile = val();
  } else if (a === "-h" || a === "--help") {
    usage();
  } else if (a === "-c" || a === "-m") {
    mode = a;
    target = val();
    rest = argv.slice(i + 1);
    break;
  } else if (a.startsWith("-")) {
    usage(`unknown option ${a}`);
  } else {
    mode = "script";
    target = a;
    rest = argv.slice(i + 1);
    break;
  }
}
if (mode === null) usage("nothing to run");

// --stdin-file: run ourselves again with that file as fd 0 (emscripten reads fd 0 itself).
if (stdinFile !== null) {
  let fd;
  try {
    fd = fs.openSync(stdinFile, "r");
  } catch (e) {
    usage(`cannot open --stdin-file ${stdinFile}: ${e.message}`);
  }
  const again = [fileURLToPath(import.meta.url), ...rawOpts];
  again.push(...(mode === "script" ? [target] : [mode, target]), ...rest);
  const r = spawnSync(process.execPath, again, { stdio: [fd, "inherit", "inherit"] });
  if (r.error) throw r.error;
  process.exit(r.status === null ? 1 : r.status);
}

// ---- output: buffered, byte for byte, stdout flushed before any stderr ----------
const outChunks = [];
let outLen = 0;
function flushOut() {
  if (outLen) {
    writeAll(1, Buffer.concat(outChunks, outLen));
    outChunks.length = 0;
    outLen = 0;
  }
}
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code === "EAGAIN") continue; // non-blocking pipe that is full: retry
      if (e.code === "EPIPE") return;
      throw e;
    }
  }
}
function onStdout(b) {
  const buf = Buffer.from(b);
  outChunks.push(buf);
  outLen += buf.length;
  if (outLen >= 1 << 16) flushOut();
}
function onStderr(b) {
  flushOut();
  writeAll(2, Buffer.from(b));
}
function finish(code) {
  flushOut();
  process.exit(code);
}
function err(text) {
  flushOut();
  writeAll(2, Buffer.from(text));
}

// ---- file system ------------------------------------------------------------------
const { loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript").catch(
  (e) => {
    process.stderr.write(
      `run.mjs: cannot load @micropython/micropython-webassembly-pyscript (${e.message}).\n` +
        "Run `make setup` (it runs `npm ci` in tools/mp).\n",
    );
    process.exit(2);
  },
);

const mp = await loadMicroPython({
  heapsize: heap,
  linebuffer: false,
  stdout: onStdout,
  stderr: onStderr,
});
const FS = mp.FS;

function mkdirs(p) {
  FS.mkdirTree(p);
}
function copyFile(host, dest) {
  mkdirs(path.posix.dirname(dest));
  FS.writeFile(dest, fs.readFileSync(host));
}
function copyTree(host, dest, skip = () => false) {
  mkdirs(dest);
  for (const ent of fs.readdirSync(host, { withFileTypes: true })) {
    if (skip(ent.name)) continue;
    const h = path.join(host, ent.name);
    const d = path.posix.join(dest, ent.name);
    if (ent.isDirectory()) copyTree(h, d, skip);
    else if (ent.isFile()) FS.writeFile(d, fs.readFileSync(h));
  }
}
const skipJunk = (n) => n === "__pycache__" || n.endsWith(".pyc") || n.startsWith(".");
function copyAny(hostPath) {
  const abs = path.resolve(hostPath);
  const st = fs.statSync(abs);
  if (st.isDirectory()) copyTree(abs, abs, skipJunk);
  else copyFile(abs, abs);
}
function isRegularFile(p) {
  try {
    const st = fs.statSync(p);
    return st.isFile() && st.size <= MAX_AUTO_COPY;
  } catch {
    return false;
  }
}

const firmware = path.join(REPO, "firmware");
const boards = path.join(REPO, "boards");
if (fs.existsSync(firmware)) copyTree(firmware, firmware, skipJunk);
if (fs.existsSync(boards)) {
  copyTree(boards, boards, skipJunk);
  copyTree(boards, "/boards", skipJunk);
}
// recorded telegrams: test data for every script
const telegrams = path.join(REPO, "host_tests", "telegrams");
if (fs.existsSync(telegrams)) copyTree(telegrams, telegrams, skipJunk);
// microdot, as it would sit in /lib on the device
const venvLib = path.join(REPO, ".venv", "lib");
if (fs.existsSync(venvLib)) {
  for (const py of fs.readdirSync(venvLib)) {
    const md = path.join(venvLib, py, "site-packages", "microdot");
    if (fs.existsSync(md)) {
      copyTree(md, "/lib/microdot", skipJunk);
      break;
    }
  }
}
for (const f of files) {
  try {
    copyAny(f);
  } catch (e) {
    usage(`--file ${f}: ${e.message}`);
  }
}
for (const a of rest) if (isRegularFile(a)) copyFile(path.resolve(a), path.resolve(a));

let scriptPath = null;
let scriptDir = null;
if (mode === "script") {
  scriptPath = path.resolve(target);
  if (!isRegularFile(scriptPath)) usage(`cannot open ${target}`);
  scriptDir = path.dirname(scriptPath);
  mkdirs(scriptDir);
  for (const ent of fs.readdirSync(scriptDir, { withFileTypes: true }))
    if (ent.isFile() && ent.name.endsWith(".py"))
      FS.writeFile(path.posix.join(scriptDir, ent.name), fs.readFileSync(path.join(scriptDir, ent.name)));
}
const cwd = process.cwd();
mkdirs(cwd);

// ---- prelude ------------------------------------------------------------------------
const q = (s) => JSON.stringify(s); // a JSON string is a valid Python str literal
const sysPath = [firmware];
if (scriptDir) sysPath.push(scriptDir);
mp.globals.set("__file__", scriptPath ?? "<string>");
mp.runPython(
  [
    "import sys, os",
    `for _p in reversed(${q(sysPath)}):`,
    "    if _p in sys.path: sys.path.remove(_p)",
    "    sys.path.insert(0, _p)",
    `os.chdir(${q(cwd)})`,
    "del _p",
  ].join("\n"),
);

// ---- what to run ----------------------------------------------------------------------
let code;
let fileForTraceback = null;
if (mode === "script") {
  code = fs.readFileSync(scriptPath, "utf8");
  fileForTraceback = scriptPath;
  mp.runPython(`sys.argv[:] = ${q([target, ...rest])}`);
} else if (mode === "-c") {
  code = target;
  fileForTraceback = "<string>";
  mp.runPython(`sys.argv[:] = ${q(["-c", ...rest])}`);
} else {
  // -m: emulate runpy (absent on this port)
  mp.runPython(`_p1_mod, _p1_args = ${q(target)}, ${q(rest)}`);
  code = `
def _p1_find(name):
    rel = name.replace(".", "/")
    for d in sys.path:
        for cand, sub in ((rel + "/__main__.py", name + ".__main__"), (rel + ".py", name)):
            f = (d + "/" if d else "") + cand
            try:
                with open(f) as fh:
                    return f, sub, fh.read()
            except OSError:
                pass
    return None, None, None

_p1_file, _p1_sub, _p1_src = _p1_find(_p1_mod)
if _p1_file is None:
    sys.stderr.write("No module named " + _p1_mod + "\\n")
    raise SystemExit(1)
sys.argv[:] = [_p1_file] + _p1_args
if any(_l.startswith("def main(") for _l in _p1_src.split("\\n")):
    _p1_m = __import__(_p1_sub)
    for _p in _p1_sub.split(".")[1:]:
        _p1_m = getattr(_p1_m, _p)
    _p1_rc = _p1_m.main(sys.argv[1:])
    if hasattr(_p1_rc, "send"):
        _p1_rc = await _p1_rc
    raise SystemExit(_p1_rc)
else:
    exec(compile(_p1_src, _p1_file, "exec"), {"__name__": "__main__", "__file__": _p1_file})
`;
}

// ---- run -------------------------------------------------------------------------------
function exitCodeOf(message) {
  // message is the traceback text; its last line reads "SystemExit: <repr-less arg>"
  const lines = message.trimEnd().split("\n");
  const last = lines[lines.length - 1];
  const arg = last.startsWith("SystemExit:") ? last.slice("SystemExit:".length).trim() : "";
  if (arg === "" || arg === "None") return 0;
  if (/^-?\d+$/.test(arg)) return Number(arg) & 0xff;
  err(arg + "\n");
  return 1;
}

try {
  await mp.runPythonAsync(code);
  finish(0);
} catch (e) {
  if (e && e.type === "SystemExit") finish(exitCodeOf(e.message));
  let msg = e && e.message !== undefined ? String(e.message) : String(e);
  if (fileForTraceback) msg = msg.split('File "<stdin>"').join(`File ${q(fileForTraceback)}`);
  err(msg.endsWith("\n") ? msg : msg + "\n");
  finish(1);
}
