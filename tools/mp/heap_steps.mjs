#!/usr/bin/env node
// Live heap of Python steps under the WebAssembly MicroPython (32-bit), one
// runPython call per step and a collection between steps: this port's
// gc.collect() frees garbage only between calls, so a single script cannot
// show the live heap.
//
//   node tools/mp/heap_steps.mjs CODE_DIR STEPS.py [HOST_FILE ...]
//
// CODE_DIR (a device build: .mpy files, lib/) goes first on sys.path. STEPS.py
// is split at lines `#--- LABEL`; each part runs in its own call, with its
// globals kept. HOST_FILEs are copied in at their absolute paths. Prints one
// line per step: "LABEL <bytes added> <bytes live>".

import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [dir, stepsFile, ...extra] = process.argv.slice(2);
if (!dir || !stepsFile) {
  process.stderr.write("usage: node tools/mp/heap_steps.mjs CODE_DIR STEPS.py [HOST_FILE ...]\n");
  process.exit(2);
}
let out = "";
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  linebuffer: false,
  stdout: (b) => (out += typeof b === "string" ? b : new TextDecoder().decode(b)),
  stderr: (b) => process.stderr.write(b),
});
function copy(src, dst) {
  mp.FS.mkdirTree(dst);
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = dst + "/" + e.name;
    if (e.isDirectory()) copy(s, d);
    else mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
copy(path.resolve(dir), "/code");
for (const f of extra) {
  const abs = path.resolve(f);
  mp.FS.mkdirTree(path.dirname(abs));
  mp.FS.writeFile(abs, fs.readFileSync(abs));
}
const steps = [];
let label = null;
let lines = [];
for (const line of fs.readFileSync(stepsFile, "utf8").split("\n")) {
  const m = line.match(/^#--- (\S+)/);
  if (m) {
    if (label !== null) steps.push([label, lines.join("\n")]);
    label = m[1];
    lines = [];
  } else lines.push(line);
}
if (label !== null) steps.push([label, lines.join("\n")]);
mp.runPython("import gc, sys\nsys.path[:0] = ['/code', '/code/lib']\ngc.collect()\n_p1_base = _p1_last = gc.mem_alloc()");
try {
  for (const [name, code] of steps) {
    mp.runPython(code);
    mp.runPython(
      `gc.collect()\n_p1_now = gc.mem_alloc()\nprint(${JSON.stringify(name)}, _p1_now - _p1_last, _p1_now - _p1_base)\n_p1_last = _p1_now`,
    );
  }
} catch (e) {
  process.stdout.write(out);
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
process.stdout.write(out);
process.exit(0);
