// Build the bundles: dist/contacthub.mjs (ESM) and dist/contacthub.umd.js (UMD, global
// `contacthub`), minified, plus the .d.ts types (tsc). Prints their sizes, raw and gzipped.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });

const common = {
  entryPoints: [join(root, "src/index.ts")],
  bundle: true,
  minify: true,
  target: "es2020",
  legalComments: "none",
  logLevel: "warning",
};
await build({ ...common, format: "esm", outfile: join(dist, "contacthub.mjs") });
// UMD: esbuild's IIFE assigns the module to a variable; the wrapper hands it to AMD, CommonJS
// or the `contacthub` global, whichever the page has.
const iife = await build({ ...common, format: "iife", globalName: "contacthub", write: false });
const body = iife.outputFiles[0].text;
const umd =
  "(function(r,f){typeof define=='function'&&define.amd?define([],f):" +
  "typeof module=='object'&&module.exports?module.exports=f():r.contacthub=f()})" +
  `(typeof self<'u'?self:this,function(){${body}return contacthub.default?` +
  "Object.assign({},contacthub,contacthub.default):contacthub});\n";
writeFileSync(join(dist, "contacthub.umd.js"), umd);

execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", root], {
  stdio: "inherit",
});

for (const name of ["contacthub.mjs", "contacthub.umd.js"]) {
  const bytes = readFileSync(join(dist, name));
  console.log(`${name}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
}
