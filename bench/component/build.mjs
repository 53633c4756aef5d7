// Build bench/component/app.js + app.wit into a component with
// componentize-js (installed with `npm install --prefix
// ~/.cache/wasm-mem/npm @bytecodealliance/componentize-js`).
// Usage: node build.mjs OUT.wasm   (WASM_MEM_NPM overrides the npm prefix)
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { homedir } from 'node:os';
import { join, dirname, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = process.env.WASM_MEM_NPM ?? join(homedir(), '.cache/wasm-mem/npm');
const entry = join(prefix, 'node_modules/@bytecodealliance/componentize-js/src/componentize.js');
// preview2-shim >= 0.26 preopens nothing by default; the splicer reads the
// WIT file through WASI, so preopen the file system as older shims did.
const shim = join(prefix, 'node_modules/@bytecodealliance/preview2-shim/dist/nodejs/filesystem.js');
(await import(shim))._setPreopens({ '/': '/' });
const { componentize } = await import(entry);
const out = resolve(process.argv[2] ?? 'app.component.wasm');

const { component } = await componentize({
  sourcePath: join(here, 'app.js'),
  witPath: join(here, 'app.wit'),
  worldName: 'hello',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
