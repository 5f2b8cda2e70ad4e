// npm run check (or `node sdk/ts/scripts/check.mjs` from anywhere): exits 0 when
// src/schema.d.ts is what `npm run generate` would write from openapi/openapi.json,
// 1 when it differs or is missing, 2 when the check itself cannot run.
// Needs only this package's installed devDependencies (`npm ci` in sdk/ts).
import { readFile } from 'node:fs/promises';
import { render, SCHEMA_PATH, SPEC_PATH } from './schema.mjs';

let expected;
try {
  expected = await render();
} catch (e) {
  console.error(`sdk/ts check: cannot generate from ${SPEC_PATH}: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
}

let actual = null;
try {
  actual = await readFile(SCHEMA_PATH, 'utf8');
} catch {
  // reported below
}

if (actual === expected) {
  console.log('sdk/ts: src/schema.d.ts is up to date with openapi/openapi.json');
  process.exit(0);
}

const why = actual === null ? 'is missing' : `differs from what openapi/openapi.json generates${firstDifference(actual, expected)}`;
console.error(
  `sdk/ts: src/schema.d.ts ${why}.\n` +
    'Regenerate it with `npm run generate --prefix sdk/ts` and commit the result.',
);
process.exit(1);

function firstDifference(a, b) {
  const al = a.split('\n');
  const bl = b.split('\n');
  for (let i = 0; i < Math.max(al.length, bl.length); i++) {
    if (al[i] !== bl[i]) {
      return ` (first at line ${i + 1}:\n  committed: ${JSON.stringify(al[i] ?? '<end of file>')}\n  generated: ${JSON.stringify(bl[i] ?? '<end of file>')})`;
    }
  }
  return '';
}
