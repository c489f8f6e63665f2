// After `vite build`: (1) `assets.json`, the list of every hashed asset, which the service worker
// caches at install (pages are chunks loaded when opened, so the shell works offline for all of
// them); (2) brotli and gzip copies beside each text file, so the API serves the smaller file with
// no per-request work (src/tradesignals/api/webapp.py picks it). Node's own zlib: no dependency.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const OUT = new URL("../src/tradesignals/web/", import.meta.url).pathname;
const TEXT = /\.(js|css|html|webmanifest|json|svg|txt|map)$/;

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const assets = walk(join(OUT, "assets")).filter((f) => /\.(js|css)$/.test(f)).map((f) => `/assets/${f.split("/assets/")[1]}`).sort();
writeFileSync(join(OUT, "assets.json"), JSON.stringify(assets));

let raw = 0, br = 0;
for (const file of walk(OUT).filter((f) => TEXT.test(f))) {
  const body = readFileSync(file);
  if (body.length < 512) continue; // not worth a header
  const b = brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } });
  writeFileSync(`${file}.br`, b);
  writeFileSync(`${file}.gz`, gzipSync(body, { level: 9 }));
  raw += body.length;
  br += b.length;
}
console.log(`compressed: ${raw} bytes of text -> ${br} bytes brotli`);
