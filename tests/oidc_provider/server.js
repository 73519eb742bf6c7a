// A strict real OpenID provider for oauthconn's tests: panva's oidc-provider, configured the
// way strict production providers behave (see docs/testing.md).
//
//   node server.js [port]          (port 0 or none: any free port)
//   env OIDC_TEST_CONFIG='{"clients": [...], "ttl": {...}}'
//
// Prints "ready <issuer>" once it listens on 127.0.0.1 and exits when its stdin closes, so a
// test run that dies cannot leave it behind. Test-only routes under /_test/: GET events (what
// the provider emitted, counted) and POST reset.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG || '{"clients": []}');
const port = Number(process.argv[2] || 0);

// --- what the provider did, for tests that assert "exactly one refresh" -------------------

const log = [];

function record(name, ctx, err) {
  const params = ctx?.oidc?.params ?? {};
  log.push({
    event: name,
    grant_type: params.grant_type ?? null,
    client_id: ctx?.oidc?.client?.clientId ?? params.client_id ?? null,
    error: err?.error ?? null,
  });
}

function counts() {
  const out = {};
  for (const { event, grant_type: grantType, error } of log) {
    const key = [event, grantType, error].filter(Boolean).join(':');
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

const RECORDED = [
  'grant.success', 'grant.error', 'grant.revoked', 'server_error',
  'authorization.success', 'authorization.error',
  'introspection.error', 'revocation.error',
];

async function testRoutes(ctx, next) {
  if (await dpopTestRoutes(ctx)) return;
  if (ctx.path === '/_test/events' && ctx.method === 'GET') {
    ctx.body = { counts: counts(), events: log };
  } else if (ctx.path === '/_test/reset' && ctx.method === 'POST') {
    log.length = 0;
    ctx.status = 204;
  } else {
    await next();
  }
}

// --- DPoP (RFC 9449), only for an instance started with config.dpop ----------------------
// config.dpop = {requireNonce: bool}: proofs accepted on every endpoint, clients registered
// with dpop_bound_access_tokens must send them. POST /_test/dpop-nonce?required=1|0 turns
// the nonce requirement (§8, §9) on and off while the provider runs.

const dpopState = { requireNonce: Boolean(config.dpop?.requireNonce) };

function dpopFeature() {
  if (!config.dpop) return {};
  return {
    dPoP: {
      enabled: true,
      nonceSecret: randomBytes(32),
      requireNonce: () => dpopState.requireNonce,
    },
  };
}

async function dpopTestRoutes(ctx) {
  if (!config.dpop || ctx.path !== '/_test/dpop-nonce' || ctx.method !== 'POST') return false;
  dpopState.requireNonce = ctx.query.required === '1';
  ctx.status = 204;
  return true;
}

// --- client authentication only by the registered method ----------------------------------
// oidc-provider (since v8) treats client_secret_basic and client_secret_post as one method:
// a client registered for either may use both. Strict providers refuse the one that was not
// registered, so this does too, before the provider sees the request. Every other mismatch
// (a secret for a public client, none for a confidential one) oidc-provider refuses itself.

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
const AUTHENTICATED_PATHS = new Set(['/token', '/token/introspection', '/token/revocation']);
const registeredMethod = new Map(
  config.clients.map((c) => [c.client_id, c.token_endpoint_auth_method ?? 'client_secret_basic']),
);

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function secretMethodUsed(ctx, form) {
  const header = ctx.headers.authorization ?? '';
  if (header.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return { method: 'client_secret_basic', clientId: decodeURIComponent(decoded.split(':')[0]) };
  }
  if (form.has('client_secret')) {
    return { method: 'client_secret_post', clientId: form.get('client_id') };
  }
  return null;
}

async function strictClientAuth(ctx, next) {
  if (ctx.method !== 'POST' || !AUTHENTICATED_PATHS.has(ctx.path)) return next();
  const raw = await readBody(ctx.req);
  // oidc-provider takes an already read body from ctx.request.body (it warns once).
  ctx.request.body = raw;
  const used = secretMethodUsed(ctx, new URLSearchParams(raw));
  const registered = used && registeredMethod.get(used.clientId);
  if (used && SECRET_METHODS.has(registered) && registered !== used.method) {
    log.push({ event: 'client_auth.refused', grant_type: null, client_id: used.clientId, error: 'invalid_client' });
    ctx.status = 401;
    ctx.body = {
      error: 'invalid_client',
      error_description: `client authentication failed: the client is registered for ${registered}`,
    };
    return undefined;
  }
  return next();
}

// --- accounts: any login name is an account, its name is the subject ----------------------

async function findAccount(ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return { sub, name: `User ${sub}`, email: `${sub}@example.com` };
    },
  };
}

function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' }] };
}

function configuration() {
  return {
    clients: config.clients,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
    },
    findAccount,
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'read', 'write'],
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: true }, // HTML login and consent forms, driven by the tests
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      ...dpopFeature(),
    },
    // PKCE (S256, the only method oidc-provider 9 knows) required for public clients, and
    // verified for confidential ones when they send it.
    pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
    // Every refresh rotates; a consumed refresh token presented again revokes the grant.
    rotateRefreshToken: true,
    clockTolerance: 0,
    ttl: {
      AccessToken: 5,
      ClientCredentials: 5,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Session: 24 * 3600,
      Interaction: 600,
      ...config.ttl,
    },
  };
}

// --- PAR, dynamic registration, resource indicators (issue 13; tests/oidc_provider_par.py) --
// Off unless the config JSON asks: the shared instance keeps oidc-provider's defaults.
//   config.par = {required, allowUnregisteredRedirectUris, ttl: {<client_id>: seconds}}
//   config.registration = {initialAccessToken: bool|string}     (RFC 7591 + RFC 7592)
//   config.resourceIndicators = {resource: url, scope: "..."}   (RFC 8707, JWT access tokens)

function pushedClientId(payload) {
  // the stored request is an unsecured JWT: header.payload. (base64url)
  const body = String(payload.request ?? '').split('.')[1] ?? '';
  return JSON.parse(Buffer.from(body, 'base64url').toString('utf8') || '{}').client_id;
}

function withParAndRegistration(conf) {
  if (config.par) {
    conf.features.pushedAuthorizationRequests = {
      enabled: true,
      requirePushedAuthorizationRequests: Boolean(config.par.required),
      // RFC 9126 §2.4: a confidential client may push a redirect_uri it never registered
      // (the browser tests' live server has a port known only at run time)
      allowUnregisteredRedirectUris: Boolean(config.par.allowUnregisteredRedirectUris),
    };
    // oidc-provider 9 fixes request_uri lifetimes at 60 s; shorter ones, per client, are
    // set where the pushed request is stored, so a test can see one expire.
    const ttls = config.par.ttl ?? {};
    conf.adapter = class ShortPushedRequests extends MemoryAdapter {
      async upsert(id, payload, expiresIn) {
        const ttl = this.model === 'PushedAuthorizationRequest' && ttls[pushedClientId(payload)];
        if (ttl) return super.upsert(id, { ...payload, exp: payload.iat + ttl }, ttl);
        return super.upsert(id, payload, expiresIn);
      }
    };
  }
  if (config.registration) {
    conf.features.registration = {
      enabled: true,
      initialAccessToken: config.registration.initialAccessToken ?? false,
    };
    conf.features.registrationManagement = { enabled: true, rotateRegistrationAccessToken: false };
  }
  if (config.resourceIndicators) {
    const { resource, scope } = config.resourceIndicators;
    conf.features.resourceIndicators = {
      enabled: true,
      defaultResource: () => undefined,
      // false: a token request without 'resource' gets no token for the API, so the tests
      // see that oauthconn sends it on the code exchange and on every refresh (RFC 8707 §2.2)
      useGrantedResource: () => false,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return { scope, audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    };
  }
  return conf;
}

function serve(server) {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, withParAndRegistration(configuration()));
  for (const name of RECORDED) provider.on(name, (ctx, err) => record(name, ctx, err));
  provider.use(testRoutes);
  provider.use(strictClientAuth);
  server.on('request', provider.callback());
  process.stdout.write(`ready ${issuer}\n`);
}

const server = createServer();
server.listen(port, '127.0.0.1', () => serve(server));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
