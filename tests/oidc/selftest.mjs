// Self-test of provider.mjs: walks the whole authorization-code flow the way
// pushdial's Rust tests do (cookie jar, no automatic redirects), then checks
// the ID token and that a replayed code is refused.
//
//   node selftest.mjs           # prints "N passed, N failed"
//   node selftest.mjs --verbose # also prints each step, the forms and cookies

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const verbose = process.argv.includes('--verbose');
const log = (...a) => { if (verbose) console.log(...a); };

const REDIRECT = 'http://127.0.0.1:5555/auth/oidc/callback';
const clients = [
  { client_id: 'pushdial', client_secret: 's3cret', redirect_uris: [REDIRECT] },
];

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) { passed += 1; log(`ok   ${name}`); } else { failed += 1; console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`); }
}

const child = spawn(process.execPath, [fileURLToPath(new URL('provider.mjs', import.meta.url))], {
  env: { ...process.env, OIDC_PORT: '0', OIDC_CLIENTS: JSON.stringify(clients) },
  stdio: ['pipe', 'pipe', verbose ? 'inherit' : 'ignore'],
});
const lines = createInterface({ input: child.stdout });
const [first] = await Promise.race([
  once(lines, 'line'),
  new Promise((_, rej) => setTimeout(() => rej(new Error('provider did not start in 10 s')), 10000)),
]);
log(`provider stdout: ${first}`);
const { issuer } = JSON.parse(first);
check('issuer line', /^http:\/\/127\.0\.0\.1:\d+$/.test(issuer), first);
let extraStdout = '';
lines.on('line', (l) => { extraStdout += `${l}\n`; });

// Minimal cookie jar: name -> value, sent on every request to the provider
// (path scoping is ignored; the provider copes).
const jar = new Map();
const seenCookies = new Map();
async function req(url, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  if (url.startsWith(issuer) && jar.size) {
    headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  const res = await fetch(url, { ...opts, headers, redirect: 'manual' });
  for (const sc of res.headers.getSetCookie()) {
    const [pair] = sc.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i);
    const value = pair.slice(i + 1);
    seenCookies.set(name, sc);
    if (/expires=Thu, 01 Jan 1970/i.test(sc) || value === '') jar.delete(name); else jar.set(name, value);
  }
  log(`${opts.method ?? 'GET'} ${url} -> ${res.status}${res.headers.get('location') ? ` Location: ${res.headers.get('location')}` : ''}`);
  return res;
}
const abs = (loc) => new URL(loc, issuer).href;
function formOf(html) {
  const m = html.match(/<form[\s\S]*?<\/form>/);
  if (!m) return null;
  const action = m[0].match(/action="([^"]*)"/)[1].replace(/&amp;/g, '&');
  const fields = {};
  for (const input of m[0].matchAll(/<input[^>]*>/g)) {
    const name = input[0].match(/name="([^"]*)"/)?.[1];
    const value = input[0].match(/value="([^"]*)"/)?.[1] ?? '';
    if (name) fields[name] = value;
  }
  return { html: m[0], action: abs(action), fields };
}
const b64url = (buf) => Buffer.from(buf).toString('base64url');

try {
  // Discovery
  const disc = await (await req(`${issuer}/.well-known/openid-configuration`)).json();
  log(JSON.stringify(disc, null, 2));
  check('discovery issuer', disc.issuer === issuer);
  check('discovery S256', JSON.stringify(disc.code_challenge_methods_supported) === '["S256"]');
  check('discovery RS256', disc.id_token_signing_alg_values_supported.includes('RS256'));
  check('discovery auth methods', ['client_secret_basic', 'client_secret_post'].every((m) => disc.token_endpoint_auth_methods_supported.includes(m)));
  check('discovery scopes', ['openid', 'email', 'profile'].every((s) => disc.scopes_supported.includes(s)));

  async function signIn(clientId, login, { pkce = true } = {}) {
    jar.clear();
    const verifier = b64url(crypto.randomBytes(32));
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const state = b64url(crypto.randomBytes(12));
    const nonce = b64url(crypto.randomBytes(12));
    const q = new URLSearchParams({
      response_type: 'code', client_id: clientId, redirect_uri: REDIRECT,
      scope: 'openid email profile', state, nonce,
      ...(pkce ? { code_challenge: challenge, code_challenge_method: 'S256' } : {}),
    });
    let res = await req(`${disc.authorization_endpoint}?${q}`);
    if (!pkce) return { res };
    check('authorize redirects to interaction', res.status === 303 && /^\/interaction\/[^/]+$/.test(res.headers.get('location')), `${res.status} ${res.headers.get('location')}`);
    res = await req(abs(res.headers.get('location')));
    const loginHtml = await res.text();
    const loginForm = formOf(loginHtml);
    check('login page 200 with form', res.status === 200 && loginForm, res.status);
    log(`LOGIN FORM:\n${loginForm.html}`);

    res = await req(loginForm.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...loginForm.fields, login, password: 'anything' }),
    });
    check('login POST redirects to /auth/<uid>', res.status === 303 && /\/auth\/[^/]+$/.test(res.headers.get('location')), `${res.status} ${res.headers.get('location')}`);
    res = await req(abs(res.headers.get('location')));
    check('resume redirects to interaction (consent)', res.status === 303 && /^\/interaction\/[^/]+$/.test(res.headers.get('location')), `${res.status} ${res.headers.get('location')}`);
    res = await req(abs(res.headers.get('location')));
    const consentForm = formOf(await res.text());
    check('consent page 200 with form', res.status === 200 && consentForm && consentForm.fields.prompt === 'consent');
    log(`CONSENT FORM:\n${consentForm.html}`);

    res = await req(consentForm.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(consentForm.fields),
    });
    check('consent POST redirects to /auth/<uid>', res.status === 303 && /\/auth\/[^/]+$/.test(res.headers.get('location')));
    res = await req(abs(res.headers.get('location')));
    const loc = res.headers.get('location') ?? '';
    check('ends at redirect_uri with code and state', (res.status === 302 || res.status === 303) && loc.startsWith(`${REDIRECT}?`), `${res.status} ${loc}`);
    const cb = new URL(loc);
    check('callback state', cb.searchParams.get('state') === state);
    check('callback iss', cb.searchParams.get('iss') === issuer, cb.search);
    return { code: cb.searchParams.get('code'), verifier, nonce };
  }

  function tokenRequest(clientId, secret, params, method = 'basic') {
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const body = new URLSearchParams(params);
    if (method === 'basic') {
      const enc = (s) => encodeURIComponent(s);
      headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`;
    } else {
      body.set('client_id', clientId);
      body.set('client_secret', secret);
    }
    return req(disc.token_endpoint, { method: 'POST', headers, body });
  }

  const jwks = await (await req(disc.jwks_uri)).json();
  function verifyIdToken(idToken) {
    const [h, p, s] = idToken.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    const ok = jwk && crypto.verify('sha256', Buffer.from(`${h}.${p}`), crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
    return { header, claims: JSON.parse(Buffer.from(p, 'base64url')), ok };
  }

  // Main flow: client_secret_basic.
  const { code, verifier, nonce } = await signIn('pushdial', 'alice');
  for (const [name, sc] of seenCookies) log(`Set-Cookie seen: ${sc}`);
  check('no Secure cookies on http', [...seenCookies.values()].every((sc) => !/;\s*secure/i.test(sc)));

  let res = await tokenRequest('pushdial', 's3cret', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: 'x'.repeat(43) });
  let body = await res.json();
  log('wrong verifier:', res.status, JSON.stringify(body));
  check('wrong code_verifier refused', res.status === 400 && body.error === 'invalid_grant');
  // A failed PKCE check does not consume the code: the right verifier still
  // works afterwards.
  res = await tokenRequest('pushdial', 's3cret', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  body = await res.json();
  log('token:', res.status, JSON.stringify(body));
  check('token 200', res.status === 200 && body.id_token && body.access_token && body.token_type === 'Bearer', JSON.stringify(body));
  const { header, claims, ok } = verifyIdToken(body.id_token);
  log('id_token header:', JSON.stringify(header));
  log('id_token claims:', JSON.stringify(claims));
  check('id_token RS256 signature', header.alg === 'RS256' && ok);
  check('id_token iss', claims.iss === issuer);
  check('id_token aud', claims.aud === 'pushdial');
  check('id_token nonce', claims.nonce === nonce);
  check('id_token sub', claims.sub === 'alice');
  check('id_token email', claims.email === 'alice@example.test' && claims.email_verified === true);
  check('id_token name', claims.name === 'Alice');

  // With the session cookie from the sign-in above, a new authorization
  // request skips both forms and goes straight back to the client.
  async function reauthorize() {
    const q = new URLSearchParams({
      response_type: 'code', client_id: 'pushdial', redirect_uri: REDIRECT,
      scope: 'openid email profile', state: 's2', nonce: 'n2',
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    const again = await req(`${disc.authorization_endpoint}?${q}`);
    const loc = again.headers.get('location') ?? '';
    check('second authorization with session cookie skips forms', again.status === 303 && loc.startsWith(`${REDIRECT}?code=`), `${again.status} ${loc}`);
    return new URL(loc).searchParams.get('code');
  }

  await reauthorize();

  const firstAccessToken = body.access_token;
  const ui = await (await req(disc.userinfo_endpoint, { headers: { authorization: `Bearer ${firstAccessToken}` } })).json();
  log('userinfo:', JSON.stringify(ui));
  check('userinfo', ui.sub === 'alice' && ui.email === 'alice@example.test' && ui.name === 'Alice');

  res = await tokenRequest('pushdial', 's3cret', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  body = await res.json();
  log('replayed code:', res.status, JSON.stringify(body));
  check('replayed code refused', res.status === 400 && body.error === 'invalid_grant', JSON.stringify(body));
  // oidc-provider treats a replay as a stolen code: it revokes the grant, so
  // the access token from the first exchange is dead too, and the next
  // authorization asks for consent again (the login session stays).
  res = await req(disc.userinfo_endpoint, { headers: { authorization: `Bearer ${firstAccessToken}` } });
  check('access token revoked after replay', res.status === 401, res.status);
  {
    const q = new URLSearchParams({
      response_type: 'code', client_id: 'pushdial', redirect_uri: REDIRECT,
      scope: 'openid email profile', state: 's3', nonce: 'n3',
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    res = await req(`${disc.authorization_endpoint}?${q}`);
    res = await req(abs(res.headers.get('location')));
    const form = formOf(await res.text());
    check('after replay: consent asked again, not login', form?.fields.prompt === 'consent', JSON.stringify(form?.fields));
  }

  // The same client may authenticate with client_secret_post as well.
  const second = await signIn('pushdial', 'bob');
  res = await tokenRequest('pushdial', 's3cret', { grant_type: 'authorization_code', code: second.code, redirect_uri: REDIRECT, code_verifier: second.verifier }, 'post');
  body = await res.json();
  check('client_secret_post token 200', res.status === 200 && verifyIdToken(body.id_token).claims.sub === 'bob', JSON.stringify(body));

  // Wrong secret.
  res = await tokenRequest('pushdial', 'nope', { grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT, code_verifier: verifier });
  body = await res.json();
  log('wrong secret:', res.status, JSON.stringify(body));
  check('wrong secret refused', res.status === 401 && body.error === 'invalid_client');

  // PKCE is required.
  const nopkce = await signIn('pushdial', 'carol', { pkce: false });
  const loc = nopkce.res.headers.get('location') ?? '';
  log('no PKCE:', nopkce.res.status, loc);
  check('authorize without PKCE refused', loc.startsWith(`${REDIRECT}?`) && new URL(loc).searchParams.get('error') === 'invalid_request', loc);

  check('nothing else on stdout', extraStdout === '', extraStdout);
} catch (err) {
  failed += 1;
  console.log(`FAIL ${err.stack}`);
}

// Closing stdin must stop the provider.
child.stdin.end();
const exited = await Promise.race([
  once(child, 'exit').then(() => true),
  new Promise((r) => setTimeout(() => r(false), 5000)),
]);
check('provider exits when stdin closes', exited);
if (!exited) child.kill('SIGKILL');

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
