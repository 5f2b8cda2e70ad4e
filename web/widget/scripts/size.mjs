// Fails when ../dist/widget.js is over its budget of 20 KB gzipped.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const BUDGET = 20 * 1024;
const file = fileURLToPath(new URL("../../dist/widget.js", import.meta.url));
const raw = readFileSync(file);
const gz = gzipSync(raw, { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1) + " KB";
console.log(`widget.js: ${kb(raw.length)} raw, ${kb(gz)} gzipped (budget ${kb(BUDGET)})`);
if (gz > BUDGET) {
  console.error(`widget.js is over budget by ${gz - BUDGET} bytes`);
  process.exit(1);
}
