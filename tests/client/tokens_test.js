// Signed tokens (tokens.*) checked by an implementation that is not ours:
// every JWT wxsessiond issues is verified with Node's crypto, from the JWKS
// entry as a JWK (ES256 signatures as r||s: dsaEncoding 'ieee-p1363'), for
// both algorithms; and one flipped byte, a changed claim, alg:none and a
// key from another issuer are refused.
// Run: WXSESSIOND_BIN=build/wxsessiond node --test tests/client/tokens_test.js
'use strict'

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert')
const crypto = require('node:crypto')

const { WxSession } = require('../../client/wxsession')
const { createHttpWx, authorizationOf } = require('./fake_wx')
const { startServers, APPID } = require('./servers')

const ISSUER = 'https://auth.example.com'

function b64url (buffer) {
  return Buffer.from(buffer).toString('base64url')
}

function decodePart (part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
}

async function postJson (url, headers) {
  const res = await fetch(url, { method: 'POST', headers })
  return { status: res.status, body: await res.json() }
}

// Logs in through mock-wechat and asks for a JWT.
async function issue (env, code) {
  const login = await fetch(env.baseURL + '/v1/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ code })
  })
  assert.strictEqual(login.status, 200)
  const { session_id: sessionId } = await login.json()
  const token = await postJson(env.baseURL + '/v1/token',
    { Authorization: 'Bearer ' + sessionId })
  assert.strictEqual(token.status, 200)
  return token.body.access_token
}

async function jwks (env) {
  const res = await fetch(env.baseURL + '/.well-known/jwks.json')
  assert.strictEqual(res.status, 200)
  return (await res.json()).keys
}

// Verifies a compact JWS the way a backend would, with Node's crypto only:
// the key from the JWKS by kid, the algorithm from the key (never from the
// token), the claims checked. Returns the claims, or throws.
function verify (token, keys, { issuer = ISSUER, audience = APPID } = {}) {
  const parts = token.split('.')
  if (parts.length !== 3) throw new Error('not a compact JWS')
  const header = decodePart(parts[0])
  const jwk = keys.find((k) => k.kid === header.kid)
  if (!jwk) throw new Error('unknown kid')
  if (header.alg !== jwk.alg) throw new Error('alg does not match the key')
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' })
  const input = Buffer.from(parts[0] + '.' + parts[1])
  const signature = Buffer.from(parts[2], 'base64url')
  const ok = jwk.alg === 'ES256'
    ? crypto.verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature)
    : crypto.verify(null, input, key, signature)
  if (!ok) throw new Error('bad signature')
  const claims = decodePart(parts[1])
  const now = Math.floor(Date.now() / 1000)
  if (claims.iss !== issuer) throw new Error('wrong issuer')
  if (claims.aud !== audience) throw new Error('wrong audience')
  if (!(claims.exp > now) || claims.nbf > now + 60) throw new Error('expired')
  return claims
}

for (const algorithm of ['ES256', 'EdDSA']) {
  describe('tokens signed with ' + algorithm, () => {
    let env
    let other  // another deployment: another issuer, another key
    before(async () => {
      env = await startServers({ tokens: { issuer: ISSUER, algorithm } })
      other = await startServers({
        tokens: { issuer: 'https://other.example.com', algorithm }
      })
    })
    after(async () => {
      await env.stop()
      await other.stop()
    })

    it('verifies with the JWKS key as a JWK in Node crypto', async () => {
      const keys = await jwks(env)
      assert.strictEqual(keys.length, 1)
      const jwk = keys[0]
      assert.strictEqual(jwk.alg, algorithm)
      assert.strictEqual(jwk.use, 'sig')
      assert.strictEqual(jwk.d, undefined)
      assert.deepStrictEqual(
        algorithm === 'ES256' ? [jwk.kty, jwk.crv] : [jwk.kty, jwk.crv],
        algorithm === 'ES256' ? ['EC', 'P-256'] : ['OKP', 'Ed25519'])
      for (let i = 0; i < 5; i++) {
        const token = await issue(env, 'alice.' + i)
        const header = decodePart(token.split('.')[0])
        assert.deepStrictEqual(header, { alg: algorithm, kid: jwk.kid, typ: 'JWT' })
        assert.strictEqual(Buffer.from(token.split('.')[2], 'base64url').length, 64)
        const claims = verify(token, keys)
        assert.strictEqual(claims.appid, APPID)
        assert.match(claims.sid, /^[0-9a-f]{64}$/)
        assert.strictEqual(claims.exp - claims.iat, 600)
        assert.strictEqual(claims.nbf, claims.iat)
        assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/)
        assert.ok(claims.sub.length > 0)
      }
    })

    it('refuses a flipped byte, a changed claim, alg none and a foreign key', async () => {
      const keys = await jwks(env)
      const token = await issue(env, 'bob.1')
      verify(token, keys)
      const [h, p, s] = token.split('.')

      const sig = Buffer.from(s, 'base64url')
      for (const at of [0, 31, 32, 63]) {
        const flipped = Buffer.from(sig)
        flipped[at] ^= 0x01
        assert.throws(() => verify(h + '.' + p + '.' + b64url(flipped), keys), /bad signature/)
      }
      const input = Buffer.from(h + '.' + p)
      input[input.length - 3] ^= 0x01
      assert.throws(() => verify(input.toString() + '.' + s, keys))

      const claims = decodePart(p)
      claims.sub = 'o-mallory'
      assert.throws(() => verify(h + '.' + b64url(JSON.stringify(claims)) + '.' + s, keys),
        /bad signature/)

      const none = b64url(JSON.stringify({ alg: 'none', kid: keys[0].kid, typ: 'JWT' }))
      assert.throws(() => verify(none + '.' + p + '.', keys), /alg does not match/)
      assert.throws(() => verify(none + '.' + p + '.' + s, keys), /alg does not match/)

      const foreign = await issue(other, 'bob.2')
      assert.throws(() => verify(foreign, keys), /unknown kid/)
      // Even with the foreign key fetched, our issuer check refuses it.
      const otherKeys = await jwks(other)
      assert.throws(() => verify(foreign, otherKeys), /wrong issuer/)
      verify(foreign, otherKeys, { issuer: 'https://other.example.com' })
    })

    it('the server refuses them too: /v1/auth and introspection', async () => {
      const token = await issue(env, 'carol.1')
      const auth = (t) => fetch(env.baseURL + '/v1/auth',
        { headers: { Authorization: 'Bearer ' + t } }).then((r) => r.status)
      assert.strictEqual(await auth(token), 204)
      const [h, p, s] = token.split('.')
      const claims = decodePart(p)
      claims.sub = 'o-mallory'
      assert.strictEqual(await auth(h + '.' + b64url(JSON.stringify(claims)) + '.' + s), 401)
      const none = b64url(JSON.stringify({ alg: 'none', kid: decodePart(h).kid, typ: 'JWT' }))
      assert.strictEqual(await auth(none + '.' + p + '.'), 401)
      assert.strictEqual(await auth(await issue(other, 'carol.2')), 401)
    })

    it("the SDK with credential: 'jwt' sends JWTs that /v1/auth accepts", async () => {
      const wx = createHttpWx()
      const session = new WxSession({ baseURL: env.baseURL, wx, credential: 'jwt' })
      const res = await session.request({ url: '/v1/auth' })
      assert.strictEqual(res.statusCode, 204)
      const sent = authorizationOf(wx.requests[wx.requests.length - 1]).replace(/^Bearer /, '')
      assert.strictEqual(sent, await session.token())
      verify(sent, await jwks(env))
      // Revoked on the server: the SDK fetches a JWT, logs in again, retries.
      await env.revokeAll()
      const again = await session.request({ url: '/v1/auth' })
      assert.strictEqual(again.statusCode, 204)
      assert.notStrictEqual(await session.token(), sent)
    })
  })
}
