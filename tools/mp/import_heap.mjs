#!/usr/bin/env node
// Live heap after importing groups of modules from a built device tree (.mpy),
// under the WebAssembly MicroPython. Its gc.collect() frees garbage only
// between runPython calls, so each import and each measurement is its own call.
//
//   node tools/mp/import_heap.mjs BUILD_DIR "label=mod1,mod2" "label=mod3" ...
//   "label=!statement;statement": run statements instead (objects a module makes:
//   docs/LOADCONTROL.md measures load management's state so)
//
// Prints one line per group: "label <bytes added> <bytes live>".

import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [dir, ...groups] = process.argv.slice(2);
if (!dir || !groups.length) {
  process.stderr.write("usage: node tools/mp/import_heap.mjs BUILD_DIR label=mod,mod ...\n");
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
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = dst + "/" + e.name;
    if (e.isDirectory()) copy(s, d);
    else if (e.name.endsWith(".mpy") || e.name.endsWith(".json")) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
copy(path.resolve(dir), "/dev_tree");
mp.runPython("import gc, sys\nsys.path[:0] = ['/dev_tree', '/dev_tree/lib']\ngc.collect()\n_base = _last = gc.mem_alloc()");
for (const g of groups) {
  const i = g.indexOf("="); const label = g.slice(0, i); const mods = g.slice(i + 1);
  mp.runPython(mods.startsWith("!") ? mods.slice(1).replaceAll(";", "\n") : `import ${mods}`);
  mp.runPython(`gc.collect()\n_now = gc.mem_alloc()\nprint(${JSON.stringify(label)}, _now - _last, _now - _base)\n_last = _now`);
}
process.stdout.write(out);
