// Browser smoke test of the console against a running api (see TESTING.md):
//
//   CONSOLE_URL=http://127.0.0.1:18080 PHONE_PORT=18082 node e2e/smoke.mjs
//
// The api must have an OpenID Connect provider that accepts any login (tests/oidc) and
// PUSHDIAL_LOOPBACK_PUSH_URL=http://127.0.0.1:$PHONE_PORT/push: this script plays the
// phone (pairs with the code the console shows, registers a loopback push channel, and on
// each offer acks and reports accepted → dialing → connected → completed).
// Drives headless Chromium (playwright-core, CHROMIUM=/usr/bin/chromium), saves
// screenshots to SHOTS (default /tmp/console-shots), prints `N passed, N failed`.
import { mkdir } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import { chromium } from 'playwright-core';

const BASE = (process.env.CONSOLE_URL ?? 'http://127.0.0.1:18080').replace(/\/$/, '');
const PHONE_PORT = Number(process.env.PHONE_PORT ?? 18082);
const SHOTS = process.env.SHOTS ?? '/tmp/console-shots';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const RUN = Date.now().toString(36);

let passed = 0;
let failed = 0;
const problems = [];

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e instanceof Error ? e.message.split('\n')[0] : e}`);
    problems.push(name);
  }
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

// ---- the phone ---------------------------------------------------------------------
const phone = { token: null, slow: new Set(), offers: [] };

async function agent(method, path, body) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { authorization: `Bearer ${phone.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function answer(callId) {
  const ack = await agent('POST', `/agent/v1/calls/${callId}/ack`);
  if (phone.slow.has(ack.to)) return; // leave it delivered: the console cancels it
  for (const status of ['accepted', 'dialing', 'connected']) {
    await sleep(600);
    await agent('POST', `/agent/v1/calls/${callId}/events`, { status });
  }
  await sleep(600);
  await agent('POST', `/agent/v1/calls/${callId}/events`, { status: 'completed', duration_s: 42 });
}

const pushServer = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    res.writeHead(200).end('{}');
    try {
      const { payload } = JSON.parse(body);
      if (payload?.call_id) {
        phone.offers.push(payload.call_id);
        answer(payload.call_id).catch((e) => console.log(`phone: ${e.message}`));
      }
    } catch {
      // not an offer
    }
  });
});

// ---- helpers -----------------------------------------------------------------------
const tid = (id) => `[data-testid="${id}"]`;

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function signIn(page, login) {
  await page.locator(tid('signin-provider')).first().click();
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'anything');
  await page.locator('button[type=submit], input[type=submit]').first().click();
  // consent (first time only), then back to the console
  await page.waitForURL((u) => u.pathname.startsWith('/console') || u.pathname.includes('/interaction') || u.pathname.startsWith('/auth/'));
  for (let i = 0; i < 3 && !new URL(page.url()).pathname.startsWith('/console'); i++) {
    const submit = page.locator('button[type=submit], input[type=submit]').first();
    if (await submit.count()) await submit.click();
    await page.waitForLoadState('load');
  }
  await page.waitForURL((u) => u.pathname.startsWith('/console'));
}

function watch(page, label) {
  // Nothing the console loads may leave the deployment. (Sign-in navigates to the
  // provider, whose own pages are not the console's: tests/oidc's load a web font.)
  const fromConsole = (r) => {
    const f = r.frame()?.url() ?? '';
    return !r.isNavigationRequest() && (f.startsWith(`${BASE}/console`) || f === 'about:srcdoc');
  };
  page.on('request', (r) => {
    if (fromConsole(r) && new URL(r.url()).origin !== new URL(BASE).origin && !r.url().startsWith('data:')) {
      problems.push(`${label} request leaves the deployment: ${r.url()}`);
    }
  });
  page.on('requestfailed', (r) => {
    // ERR_ABORTED: the page went away (a reload ends the call's event stream).
    if (fromConsole(r) && r.failure()?.errorText !== 'net::ERR_ABORTED') {
      problems.push(`${label} request failed: ${r.url()} ${r.failure()?.errorText}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`${label} page error: ${e.message}`));
  page.on('console', (m) => {
    const at = m.location()?.url ?? '';
    if (m.type() === 'error' && at.startsWith(BASE) && !/status of 4\d\d/.test(m.text())) problems.push(`${label} console: ${m.text()}`);
  });
}

// ---- the run -----------------------------------------------------------------------
await mkdir(SHOTS, { recursive: true });
await new Promise((r) => pushServer.listen(PHONE_PORT, '127.0.0.1', r));
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  watch(page, 'admin');

  await step('signed out: the sign-in page lists the providers', async () => {
    await page.goto(`${BASE}/console/`);
    await page.waitForSelector(tid('signin-page'));
    // The page renders before GET /auth/providers answers: wait for the buttons to come.
    await page.waitForSelector(tid('signin-provider'), { timeout: 10000 }).catch(() => {});
    expect((await page.locator(tid('signin-provider')).count()) > 0, 'no provider button');
    await shot(page, '01-signin');
  });

  await step('sign in, no organization yet: create one', async () => {
    await signIn(page, `ada${RUN}`);
    await page.waitForSelector(tid('no-org-page'));
    await shot(page, '02-no-org');
    await page.fill(tid('org-name'), `Acme ${RUN}`);
    await page.selectOption(tid('org-country'), 'US');
    await page.click(tid('org-create'));
    await page.waitForSelector(tid('dialer-page'));
  });

  await step('dialer without a phone: notice and pairing link, no call button', async () => {
    await page.waitForSelector(tid('no-phone-notice'));
    expect((await page.locator(tid('dialer-call')).count()) === 0, 'call button shown without a phone');
    await shot(page, '03-dialer-no-phone');
  });

  let code;
  await step('pair page: code, countdown, QR code, agent command', async () => {
    await page.click(tid('pair-link'));
    await page.waitForSelector(tid('pair-page'));
    await page.click(tid('pair-create'));
    await page.waitForSelector(tid('pair-code'));
    code = (await page.textContent(tid('pair-code'))).trim();
    expect(/\S{4}/.test(code), `code ${code}`);
    await page.waitForSelector(`${tid('pair-qr')} svg`);
    const cmd = await page.textContent(tid('pair-command'));
    expect(cmd.includes(`--code ${code}`) && cmd.includes(`--server ${BASE}`), cmd);
    await shot(page, '04-pair');
  });

  await step('the phone pairs with the code; the pair page sees it', async () => {
    const res = await fetch(`${BASE}/agent/v1/pair`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code, name: 'Test phone', platform: 'cli' }),
    });
    const paired = await res.json();
    expect(res.ok, `pair ${res.status} ${JSON.stringify(paired)}`);
    phone.token = paired.token;
    await agent('PUT', '/agent/v1/device', { push: { provider: 'loopback', token: `tok-${RUN}` } });
    await page.waitForSelector(tid('pair-success'), { timeout: 10_000 });
    await shot(page, '05-paired');
  });

  await step('dialer with a reachable phone: presence, number check as you type', async () => {
    await page.click(tid('nav-dialer'));
    await page.waitForSelector(tid('dialer-number'), { timeout: 10_000 });
    const presence = await page.getAttribute(tid('device'), 'data-presence');
    expect(presence === 'push' || presence === 'online', `presence ${presence}`);
    await page.fill(tid('dialer-number'), '+1 41');
    expect(await page.isDisabled(tid('dialer-call')), 'call enabled for a short number');
    expect((await page.getAttribute(tid('dialer-number'), 'aria-invalid')) === 'true', 'not marked invalid');
    await page.fill(tid('dialer-number'), '(415) 555-0123');
    expect((await page.textContent(tid('dialer-hint'))).includes('+14155550123'), 'national number not completed');
    await shot(page, '06-dialer');
  });

  await step('call: live timeline over SSE to completed', async () => {
    await page.fill(tid('dialer-number'), '+1 415 555 0123');
    await page.click(tid('dialer-call'));
    await page.waitForSelector(tid('active-call'));
    await page.waitForSelector(`${tid('call-status')}[data-status="completed"]`, { timeout: 20_000 });
    const statuses = await page.locator(tid('timeline-entry')).evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    for (const s of ['queued', 'offered', 'delivered', 'accepted', 'dialing', 'connected', 'completed']) {
      expect(statuses.includes(s), `timeline lacks ${s}: ${statuses.join(',')}`);
    }
    await shot(page, '07-call-completed');
    await page.click(tid('call-new'));
  });

  await step('the server refuses a premium-rate number: its detail is shown', async () => {
    await page.fill(tid('dialer-number'), '+1 900 555 0123');
    await page.click(tid('dialer-call'));
    await page.waitForSelector(tid('dialer-error'));
    const text = await page.textContent(tid('dialer-error'));
    expect(text.length > 10, text);
    await shot(page, '08-dialer-422');
  });

  await step('cancel a call the phone has not accepted', async () => {
    phone.slow.add('+14155550199');
    await page.fill(tid('dialer-number'), '+14155550199');
    await page.click(tid('dialer-call'));
    await page.waitForSelector(tid('call-cancel'));
    await page.waitForSelector(`${tid('timeline-entry')}[data-status="delivered"]`, { timeout: 10_000 });
    await page.reload(); // the call on screen survives a reload
    await page.waitForSelector(`${tid('timeline-entry')}[data-status="delivered"]`, { timeout: 10_000 });
    await page.click(tid('call-cancel'));
    await page.waitForSelector(`${tid('call-status')}[data-status="canceled"]`, { timeout: 10_000 });
    expect((await page.locator(tid('call-cancel')).count()) === 0, 'cancel still offered');
    await shot(page, '09-call-canceled');
    await page.click(tid('call-new'));
  });

  await step('/console/dial?to=tel:… pre-fills the dialer', async () => {
    await page.goto(`${BASE}/console/dial?to=${encodeURIComponent('tel:+1-415-555-0123')}`);
    await page.waitForSelector(tid('dialer-number'), { timeout: 10_000 });
    expect((await page.inputValue(tid('dialer-number'))) === '+1-415-555-0123', await page.inputValue(tid('dialer-number')));
    await page.goto(`${BASE}/console/dial?to=${encodeURIComponent('web+pushdial:+14155550123')}`);
    await page.waitForSelector(tid('dialer-number'), { timeout: 10_000 });
    expect((await page.inputValue(tid('dialer-number'))) === '+14155550123', await page.inputValue(tid('dialer-number')));
    const bm = await page.getAttribute(tid('bookmarklet'), 'href');
    expect(bm?.startsWith('javascript:') && bm.includes(`${BASE}/console/dial?to=`), bm);
  });

  await step('call log: filters, rows, call detail with events', async () => {
    await page.click(tid('nav-calls'));
    await page.waitForSelector(tid('call-row'));
    expect((await page.locator(tid('call-row')).count()) >= 2, 'fewer than 2 calls');
    await page.selectOption(tid('calls-filter-status'), 'canceled');
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="call-row"]')].every((r) => r.getAttribute('data-status') === 'canceled'));
    await page.selectOption(tid('calls-filter-status'), '');
    await page.waitForSelector(`${tid('call-row')}[data-status="completed"]`);
    const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const tomorrow = new Date(Date.now() + 86_400_000);
    await page.fill(tid('calls-filter-from'), day(tomorrow));
    await page.waitForSelector(tid('calls-empty'));
    await page.fill(tid('calls-filter-from'), day(new Date()));
    await page.fill(tid('calls-filter-to'), day(new Date()));
    await page.waitForSelector(`${tid('call-row')}[data-status="completed"]`);
    await page.fill(tid('calls-filter-from'), '');
    await page.fill(tid('calls-filter-to'), '');
    await shot(page, '10-calls');
    await page.locator(`${tid('call-row')}[data-status="completed"] ${tid('call-link')}`).first().click();
    await page.waitForSelector(tid('call-event-row'));
    await shot(page, '11-call-detail');
  });

  let inviteUrl;
  await step('members: invite by link', async () => {
    await page.click(tid('nav-members'));
    await page.waitForSelector(tid('member-row'));
    await page.selectOption(tid('invite-role'), 'agent');
    await page.click(tid('invite-create'));
    await page.waitForSelector(`${tid('invite-link')}, ${tid('invite-sent')}`);
    if (await page.locator(tid('invite-link')).count()) inviteUrl = await page.inputValue(tid('invite-link'));
    expect(inviteUrl?.includes('/console/join#pd_inv_'), `link ${inviteUrl}`);
    await page.waitForSelector(`${tid('invitation-row')}[data-status="pending"]`);
    await shot(page, '12-members');
  });

  await step('API keys: create shows the secret once; roll; revoke', async () => {
    await page.click(tid('nav-api-keys'));
    await page.fill(tid('apikey-name'), 'CRM');
    await page.click(tid('apikey-create'));
    await page.waitForSelector(tid('apikey-secret'));
    expect((await page.inputValue(tid('apikey-secret'))).startsWith('pd_sk_'), 'no pd_sk_ secret');
    await page.waitForSelector(tid('apikey-row'));
    await shot(page, '13-apikeys');
    await page.click(tid('apikey-secret-done'));
    await page.locator(tid('apikey-roll')).first().click();
    await page.selectOption(tid('apikey-roll-overlap'), '3600');
    await page.click(tid('apikey-roll-yes'));
    await page.waitForSelector(tid('apikey-secret'));
    await page.waitForSelector(`${tid('apikey-row')}[data-status="expiring"]`);
    await page.click(tid('apikey-secret-done'));
    await page.locator(`${tid('apikey-row')}[data-status="active"] ${tid('apikey-revoke')}`).first().click();
    await page.click(tid('apikey-revoke-yes'));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="apikey-row"][data-status="active"]').length === 0);
  });

  await step('webhooks: create shows whsec once; detail, disable, rotate', async () => {
    await page.click(tid('nav-webhooks'));
    await page.fill(tid('webhook-url'), 'https://example.com/pushdial');
    await page.click(tid('webhook-create'));
    await page.waitForSelector(`${tid('webhook-secret')}, ${tid('error')}`);
    expect((await page.inputValue(tid('webhook-secret'))).startsWith('whsec_'), 'no whsec_');
    await page.click(tid('webhook-link'));
    await page.waitForSelector(tid('webhook-page'));
    await page.click(tid('webhook-toggle'));
    await page.waitForSelector(`${tid('webhook-state')}[data-enabled="false"]`);
    await page.click(tid('webhook-rotate'));
    await page.click(tid('webhook-rotate-yes'));
    await page.waitForSelector(tid('webhook-secret'));
    await shot(page, '14-webhook');
  });

  await step('widgets: create, embed snippet, live preview loads /widget.js', async () => {
    await page.click(tid('nav-widgets'));
    await page.click(tid('widget-new'));
    await page.fill(tid('widget-name'), 'Website');
    await page.fill(tid('widget-origins'), 'https://shop.example');
    expect(await page.isChecked(tid('widget-always-open')), 'a new widget is not always open');
    await page.click(tid('widget-save'));
    await page.waitForSelector(tid('widget-snippet'), { timeout: 10_000 });
    const snippet = await page.textContent(tid('widget-snippet'));
    expect(snippet.includes('data-key="pd_pk_'), snippet);
    // The hourly caps show their defaults and are the organization's to change.
    expect((await page.inputValue(tid('widget-max-callbacks'))) === '30', 'the callbacks cap shows its default');
    await page.fill(tid('widget-max-callbacks'), '12');
    await page.fill(tid('widget-max-scheduled'), '5');
    await page.click(tid('widget-save'));
    await page.waitForSelector('form[aria-label="Widget settings"] .note-ok');
    await page.click(tid('nav-widgets'));
    await page.click(tid('widget-link'));
    await page.waitForSelector(tid('widget-snippet'));
    const caps = [await page.inputValue(tid('widget-max-callbacks')), await page.inputValue(tid('widget-max-scheduled'))];
    expect(caps.join() === '12,5', `the hourly caps were saved: ${caps}`);
    await page.waitForSelector(tid('widget-preview'));
    await page.waitForTimeout(2500);
    await shot(page, '15-widget');
  });

  await step('push credentials, dialing policy, audit log render', async () => {
    await page.click(tid('nav-push'));
    await page.waitForSelector(tid('push-fcm'));
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await page.fill(tid('push-vapid-private'), privateKey.export({ format: 'jwk' }).d);
    await page.fill(tid('push-vapid-subject'), 'mailto:ops@example.com');
    await page.click(tid('push-save-webpush'));
    await page.waitForSelector(tid('push-current-webpush'));
    expect((await page.inputValue(tid('push-vapid-private'))) === '', 'the private key stays on screen');
    await shot(page, '16-push');
    await page.click(tid('nav-dialing'));
    await page.waitForSelector(tid('dialing-countries'));
    await page.selectOption(tid('dialing-add-country'), 'CA');
    await page.click(tid('dialing-add'));
    await page.click(tid('dialing-save'));
    await page.waitForSelector(tid('dialing-saved'));
    await page.fill(tid('blocklist-prefix'), '+1900');
    await page.click(tid('blocklist-add'));
    await page.waitForSelector(tid('blocklist-row'));
    await shot(page, '17-dialing');
    await page.click(tid('nav-audit'));
    await page.waitForSelector(tid('audit-row'));
    await page.fill(tid('audit-action'), 'api_key.created');
    await page.click(tid('audit-filter'));
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="audit-row"]')].every((r) => r.getAttribute('data-action') === 'api_key.created'));
    await shot(page, '18-audit');
  });

  await step('phone-sized screen (360 px): dialer and menu', async () => {
    const m = await browser.newContext({ viewport: { width: 360, height: 740 }, storageState: await ctx.storageState(), isMobile: true, hasTouch: true });
    const p = await m.newPage();
    watch(p, 'mobile');
    await p.goto(`${BASE}/console/`);
    await p.waitForSelector(tid('dialer-number'), { timeout: 10_000 });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow <= 0, `page wider than the screen by ${overflow}px`);
    await shot(p, '19-mobile-dialer');
    await p.click(tid('nav-toggle'));
    await p.waitForSelector(`${tid('nav-calls')}:visible`);
    await shot(p, '20-mobile-menu');
    await p.click(tid('nav-calls'));
    await p.waitForSelector(tid('call-row'));
    const overflow2 = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow2 <= 0, `calls page wider than the screen by ${overflow2}px`);
    await shot(p, '21-mobile-calls');
    for (const [path, ready] of [
      ['/members', 'member-row'],
      ['/api-keys', 'apikey-row'],
      ['/dialing', 'dialing-countries'],
      ['/audit', 'audit-row'],
      ['/pair', 'pair-create'],
    ]) {
      await p.goto(`${BASE}/console${path}`);
      await p.waitForSelector(tid(ready));
      const over = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(over <= 0, `${path} wider than the screen by ${over}px`);
    }
    await m.close();
  });

  await step('invitation link: sign in, join, dialer in the new organization', async () => {
    expect(inviteUrl, 'no invitation link');
    const b = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const p = await b.newPage();
    watch(p, 'invitee');
    await p.goto(inviteUrl);
    await p.waitForSelector(tid('signin-page'));
    expect(!p.url().includes('#'), 'token left in the address bar');
    await signIn(p, `bob${RUN}`);
    await p.waitForSelector(tid('dialer-page'), { timeout: 15_000 });
    const org = await p.locator(`${tid('org-switcher')} option:checked`).textContent();
    expect(org.includes(`Acme ${RUN}`) && org.includes('agent'), `org ${org}`);
    expect((await p.locator(tid('nav-members')).count()) === 0, 'agent sees admin pages');
    await p.goto(`${BASE}/console/api-keys`);
    await p.waitForSelector(tid('not-allowed'));
    await shot(p, '22-invitee');
    await b.close();
  });

  await step('members: an admin changes the new member role', async () => {
    await page.click(tid('nav-members'));
    const row = page.locator(`${tid('member-row')}[data-role="agent"]`).first();
    await row.waitFor();
    await row.locator(tid('member-role')).selectOption('admin');
    await page.waitForSelector(`${tid('member-row')}[data-role="admin"]`);
  });

  await step('sign out', async () => {
    await page.click(tid('user-menu'));
    await page.click(tid('menu-signout'));
    await page.waitForSelector(tid('signin-page'));
  });
} finally {
  await browser.close();
  pushServer.close();
}

for (const p of problems) console.log(`  problem: ${p}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
