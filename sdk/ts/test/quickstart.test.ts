// The README's quick start, run exactly as written (its `@pushdial/sdk` is this package).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { needServer } from './support.js';

describe('README', () => {
  afterEach(() => vi.restoreAllMocks());

  test('the quick start places a call and lists calls as written', async () => {
    needServer();
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const block = /## Quick start[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'README.md has a ```ts block under "## Quick start"').toBeDefined();
    expect(block!.trim().split('\n').length).toBeLessThanOrEqual(5);

    const dir = new URL('./.tmp/', import.meta.url);
    await mkdir(dir, { recursive: true });
    const file = new URL(`quickstart-${Date.now()}.ts`, dir);
    await writeFile(file, block!);
    const printed: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      printed.push(args.join(' '));
    });
    await import(/* @vite-ignore */ pathToFileURL(file.pathname).href);
    expect(printed.length).toBeGreaterThanOrEqual(2);
    const [created] = printed;
    const callId = created!.split(' ')[0]!;
    expect(callId).toMatch(/^call_/);
    expect(printed.slice(1).some((line) => line.startsWith(callId))).toBe(true);
  });
});
