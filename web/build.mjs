// Builds the member web app into api/web/ (committed, shipped in the Python package):
// one minified ES module, one stylesheet (each also gzipped), index.html with cache-busting hashes.
// Usage: node web/build.mjs [--out DIR] [--check]   (--check prints sizes and fails over budget)
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const OUT = resolve(args.includes("--out") ? args[args.indexOf("--out") + 1] : join(HERE, "..", "api", "web"));
export const BUDGET_GZIP_JS = 72 * 1024; // a cheap phone on a slow link: one small download (~1.5 s at 400 kbit/s)

const js = await build({
  entryPoints: [join(HERE, "src", "main.js")], bundle: true, minify: true, format: "esm", target: ["es2020"],
  write: false, legalComments: "none", charset: "utf8", metafile: true,
});
const code = js.outputFiles[0].contents;
const css = readFileSync(join(HERE, "style.css"));
const hash = (b) => createHash("sha256").update(b).digest("hex").slice(0, 12);
const html = readFileSync(join(HERE, "index.html"), "utf8")
  .replace("__JS_HASH__", hash(code)).replace("__CSS_HASH__", hash(css));

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, "app.js"), code);
writeFileSync(join(OUT, "app.css"), css);
writeFileSync(join(OUT, "index.html"), html);
// Precompressed copies, served with Content-Encoding: gzip to browsers that accept it
// (api/app.py); nothing is compressed per request.
writeFileSync(join(OUT, "app.js.gz"), gzipSync(code, { level: 9 }));
writeFileSync(join(OUT, "app.css.gz"), gzipSync(css, { level: 9 }));

const size = (b) => ({ raw: b.length, gzip: gzipSync(b, { level: 9 }).length });
const report = { "app.js": size(code), "app.css": size(Buffer.from(css)), "index.html": size(Buffer.from(html)) };
for (const [f, s] of Object.entries(report)) console.log(`${f.padEnd(11)} ${String(s.raw).padStart(7)} B raw ${String(s.gzip).padStart(7)} B gzip`);
if (report["app.js"].gzip > BUDGET_GZIP_JS) {
  console.error(`app.js is ${report["app.js"].gzip} B gzipped, over the ${BUDGET_GZIP_JS} B budget`);
  process.exit(1);
}
