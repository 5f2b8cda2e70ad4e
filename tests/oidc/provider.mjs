// Loopback OpenID Connect provider for pushdial's integration tests.
//
// Runs the certified `oidc-provider` package on 127.0.0.1 with its built-in
// development interactions (a login form that accepts any login/password,
// then a consent form). See README.md in this folder.
//
// Environment:
//   OIDC_PORT     port to bind on 127.0.0.1 (default 0: the OS picks a free one)
//   OIDC_CLIENTS  JSON array of confidential clients:
//                 [{"client_id": "...", "client_secret": "...",
//                   "redirect_uris": ["http://127.0.0.1:.../cb"]}]
//                 Registered as client_secret_basic; oidc-provider 9 takes
//                 client_secret_post from the same client as well.
//
// Protocol with the parent process:
//   - stdout carries exactly one line, `{"issuer":"http://127.0.0.1:PORT"}`,
//     once the socket is listening; everything else goes to stderr.
//   - the provider exits when its stdin reaches end-of-file (the parent
//     died or dropped the pipe), or on SIGTERM / SIGINT.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as util from 'node:util';

import Provider from 'oidc-provider';

// oidc-provider prints its notices with console.info (stdout); the parent
// reads stdout for the issuer line only, so route all console output but
// errors and warnings (already stderr) to stderr.
for (const method of ['log', 'info', 'debug']) {
  console[method] = (...args) => process.stderr.write(`${util.format(...args)}\n`);
}

function fail(message) {
  process.stderr.write(`oidc fixture: ${message}\n`);
  process.exit(2);
}

function parseClients(raw) {
  let list;
  try {
    list = JSON.parse(raw ?? '[]');
  } catch (err) {
    fail(`OIDC_CLIENTS is not JSON: ${err.message}`);
  }
  if (!Array.isArray(list)) fail('OIDC_CLIENTS must be a JSON array');
  return list.map((c, i) => {
    if (!c || typeof c.client_id !== 'string' || typeof c.client_secret !== 'string'
      || !Array.isArray(c.redirect_uris) || c.redirect_uris.length === 0) {
      fail(`OIDC_CLIENTS[${i}] needs client_id, client_secret and a non-empty redirect_uris`);
    }
    return {
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      scope: 'openid email profile',
    };
  });
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

function capitalise(s) {
  return s.length ? s[0].toUpperCase() + s.slice(1) : s;
}

const port = Number.parseInt(process.env.OIDC_PORT ?? '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad OIDC_PORT ${process.env.OIDC_PORT}`);
const clients = parseClients(process.env.OIDC_CLIENTS);

// Bind first: the issuer must carry the real port, which is only known once
// listening when OIDC_PORT is 0. Requests are handed to the provider below.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey()] },
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    // No `secure` flag: the provider adds it only when the request is https.
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  scopes: ['openid', 'email', 'profile'],
  // By default oidc-provider leaves scope-requested claims (email, name) out
  // of an ID token issued together with an access token usable at userinfo.
  // pushdial reads them from the ID token, as most providers put them there.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.test`,
          email_verified: true,
          name: capitalise(id),
        };
      },
    };
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 3600,
    Grant: 3600,
  },
});
provider.proxy = false;

provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`oidc fixture: server_error: ${err?.stack ?? err}\n`);
});

server.on('request', provider.callback());

process.stdout.write(`${JSON.stringify({ issuer })}\n`);

function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}

process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
