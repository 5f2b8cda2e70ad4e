// The package as others get it: built (`npm run build`) and imported by its name from
// plain Node through its `exports`; and its sources bundled for the browser, where
// nothing of Node's may be reached.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build, type Rollup } from 'vite';
import { describe, expect, test } from 'vitest';
import { needServer } from './support.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

describe('package', () => {
  test('the built package is used from plain Node by its name', async () => {
    const { url, apiKey, agentId } = needServer();
    await run('npm', ['run', 'build', '--silent'], { cwd: root });
    // Inside the package, `@pushdial/sdk` resolves to itself through package.json's exports.
    const script = `
      import { AuthenticationError, Pushdial, verifyWebhook, WebhookVerificationError } from '@pushdial/sdk';
      import { Webhook } from 'standardwebhooks';
      const pd = new Pushdial({ baseUrl: process.env.PUSHDIAL_URL, apiKey: process.env.PUSHDIAL_API_KEY });
      const agent = await pd.agents.get(process.env.PUSHDIAL_AGENT_ID);
      const stranger = new Pushdial({ baseUrl: process.env.PUSHDIAL_URL, apiKey: 'pd_sk_wrong' });
      const denied = await stranger.agents.get(agent.id).catch((e) => e);
      const secret = 'whsec_' + btoa('a secret of thirty-two bytes....');
      const body = JSON.stringify({ id: 'evt_1', type: 'webhook.test', created_at: new Date().toISOString(), org_id: 'org_1', data: {} });
      const now = new Date();
      const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(Math.floor(now / 1000)), 'webhook-signature': new Webhook(secret).sign('evt_1', now, body) };
      let forged;
      try { verifyWebhook(body + ' ', headers, secret); } catch (e) { forged = e instanceof WebhookVerificationError; }
      console.log(JSON.stringify({ agent: agent.id, denied: denied instanceof AuthenticationError && denied.status, verified: verifyWebhook(body, headers, secret).type, forged }));
    `;
    const dir = new URL('./.tmp/', import.meta.url);
    await mkdir(dir, { recursive: true });
    const file = fileURLToPath(new URL('built-package.mjs', dir));
    await writeFile(file, script);
    const { stdout } = await run('node', [file], { cwd: root, env: { ...process.env, PUSHDIAL_URL: url, PUSHDIAL_API_KEY: apiKey, PUSHDIAL_AGENT_ID: agentId } });
    expect(JSON.parse(stdout.trim())).toEqual({ agent: agentId, denied: 401, verified: 'webhook.test', forged: true });
  });

  test('the sources bundle for the browser with nothing of Node in them', async () => {
    const out = (await build({
      configFile: false,
      logLevel: 'silent',
      root,
      build: {
        write: false,
        minify: false,
        lib: { entry: fileURLToPath(new URL('../src/index.ts', import.meta.url)), formats: ['es'], fileName: 'sdk' },
      },
    })) as Rollup.RollupOutput[];
    const code = out
      .flatMap((o) => o.output)
      .map((c) => ('code' in c ? c.code : ''))
      .join('\n')
      .split('\n')
      // Code only: the doc comments show server-side examples.
      .filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line))
      .join('\n');
    // A Node built-in would be swapped for Vite's empty browser shim (vite-browser-external).
    expect(code).not.toMatch(/vite.browser.external|from ['"]node:|require\(['"]|process\.env|\bBuffer\./);
    expect(code).toContain('function verifyWebhook');
    expect(code).toMatch(/class Pushdial|Pushdial = class/);
  });
});
