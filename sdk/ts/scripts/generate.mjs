// npm run generate: rewrites src/schema.d.ts from openapi/openapi.json.
import { writeFile } from 'node:fs/promises';
import { render, SCHEMA_PATH } from './schema.mjs';

try {
  await writeFile(SCHEMA_PATH, await render());
  console.log(`wrote ${SCHEMA_PATH}`);
} catch (e) {
  console.error(`generate: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
