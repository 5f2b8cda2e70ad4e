// tsc does not copy declaration files from src/ to dist/: the built index.d.ts imports
// ./schema.js, so put the generated schema.d.ts beside it.
import { copyFile, mkdir } from 'node:fs/promises';

const dist = new URL('../dist/', import.meta.url);
await mkdir(dist, { recursive: true });
await copyFile(new URL('../src/schema.d.ts', import.meta.url), new URL('schema.d.ts', dist));
