// Builds the browser app (web/app) into one directory the edge serves at `/`:
//   index.html   the page, naming the bundle and the style sheet with their content hashes
//   app.js       the app and the generated SDK, bundled and minified by esbuild
//   app.css      the style sheet
// Usage: node build.mjs OUT_DIR [--check]  (--check type-checks with tsc first)

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const out = args.find((a) => !a.startsWith("--"));
if (!out) {
  console.error("usage: node build.mjs OUT_DIR [--check]");
  process.exit(2);
}
if (args.includes("--check")) {
  execFileSync(join(here, "node_modules/.bin/tsc"), ["-p", join(here, "tsconfig.json")], {
    stdio: "inherit",
  });
}

const result = await esbuild.build({
  entryPoints: [join(here, "app/src/main.tsx")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  write: false,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});
const js = result.outputFiles[0].contents;
const css = readFileSync(join(here, "app/style.css"));
const hash = (bytes) => createHash("sha256").update(bytes).digest("hex").slice(0, 12);

mkdirSync(out, { recursive: true });
writeFileSync(join(out, "app.js"), js);
writeFileSync(join(out, "app.css"), css);
const page = readFileSync(join(here, "app/index.html"), "utf8")
  .replace("%APP_JS%", `/app.js?v=${hash(js)}`)
  .replace("%APP_CSS%", `/app.css?v=${hash(css)}`);
writeFileSync(join(out, "index.html"), page);
console.error(`web app: ${out} (app.js ${(js.length / 1024).toFixed(0)} KiB)`);
