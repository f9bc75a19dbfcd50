// The client SDK (client/wxsession.js) in Node, with a fake `wx` doing real
// HTTP, through a real proxy running a shipped config
// (scripts/deploy/nginx.conf or scripts/deploy/Caddyfile).
//
// Not a test file of its own: tests/e2e_gateway_test.cc starts mock-wechat,
// wxsessiond, an echo backend and the proxy, then runs
//   node through_proxy.js sdk|buckets
// with PROXY_URL (the proxy), MOCK_URL (mock-wechat, for the user's
// session_key) and APPID in the environment. Exit 0 when every check
// holds; else the failed assertion on stderr and exit 1.
//
//   sdk      every route the SDK calls: login, request to the backend (which
//            echoes the identity headers it got), phoneNumber, decrypt,
//            /v1/verify, /v1/session/check, /v1/session and logout.
//   buckets  per-client login limits behind the proxy (wxsessiond runs with
//            login_per_minute 6, so a burst of 1): clients on 127.0.0.2 and
//            127.0.0.3 have separate buckets, and a client's own
//            X-Forwarded-For / X-Real-IP cannot move it to another one.
'use strict'

const assert = require('node:assert')
const crypto = require('node:crypto')
const http = require('node:http')

const { WxSession } = require('../../client/wxsession')
const { createHttpWx } = require('./fake_wx')

const PROXY_URL = process.env.PROXY_URL
const MOCK_URL = process.env.MOCK_URL
const APPID = process.env.APPID

// One HTTP exchange without the SDK: resolves to { status, body (parsed
// JSON when it is JSON) }. `localAddress` picks the client's source address.
function exchange (method, url, { headers = {}, body, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, localAddress }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed = text
        try { parsed = JSON.parse(text) } catch (ignored) {}
        resolve({ status: res.statusCode, body: parsed })
      })
    })
    req.on('error', reject)
    if (body !== undefined) req.write(body)
    req.end()
  })
}

// Open data as WeChat makes it: AES-128-CBC under `sessionKey` (base64),
// PKCS#7, base64.
function seal (sessionKey, payload) {
  const iv = crypto.randomBytes(16)
  const cipher = crypto.createCipheriv('aes-128-cbc', Buffer.from(sessionKey, 'base64'), iv)
  const encrypted = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()])
  return { encryptedData: encrypted.toString('base64'), iv: iv.toString('base64') }
}

async function sdk () {
  const wx = createHttpWx({ user: 'proxied' + process.pid })
  const session = new WxSession({ baseURL: PROXY_URL, storageKey: 'wxsession', wx })

  // request: the first call logs in; the backend sees wxsessiond's word on
  // who it is, never the session id.
  const profile = await session.request({ url: '/api/profile' })
  assert.strictEqual(profile.statusCode, 200, JSON.stringify(profile.data))
  assert.strictEqual(profile.data.path, '/api/profile')
  assert.strictEqual(profile.data['X-WX-AppID'], APPID)
  assert.match(String(profile.data['X-WX-OpenID']), /^o/)
  assert.strictEqual(profile.data.Authorization, null)
  assert.strictEqual(wx.loginCalls, 1)
  const openid = profile.data['X-WX-OpenID']

  // GET /v1/session: wxsessiond answers, not the backend.
  const me = await session.request({ url: '/v1/session' })
  assert.strictEqual(me.statusCode, 200, JSON.stringify(me.data))
  assert.strictEqual(me.data.openid, openid)
  assert.strictEqual(me.data.appid, APPID)

  // phoneNumber: POST /v1/phone.
  assert.deepStrictEqual(await session.phoneNumber('proxied.' + process.pid),
    { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86' })

  // decrypt: POST /v1/decrypt, with data sealed under the user's key.
  const key = await exchange('GET', MOCK_URL + '/mock/session_key?appid=' +
    encodeURIComponent(APPID) + '&openid=' + encodeURIComponent(openid))
  assert.strictEqual(key.status, 200, JSON.stringify(key.body))
  const payload = { nickName: 'proxied', watermark: { appid: APPID, timestamp: Math.floor(Date.now() / 1000) } }
  assert.deepStrictEqual(await session.decrypt(seal(key.body.session_key, payload)), payload)

  // POST /v1/verify: signature = sha1(rawData + session_key).
  const rawData = JSON.stringify({ nickName: 'proxied' })
  const signature = crypto.createHash('sha1').update(rawData + key.body.session_key).digest('hex')
  const verified = await session.request({ url: '/v1/verify', method: 'POST', data: { rawData, signature } })
  assert.strictEqual(verified.statusCode, 200, JSON.stringify(verified.data))
  assert.deepStrictEqual(verified.data, { valid: true })
  const forged = await session.request({ url: '/v1/verify', method: 'POST', data: { rawData, signature: '0'.repeat(40) } })
  assert.deepStrictEqual(forged.data, { valid: false })

  // POST /v1/session/check: WeChat's checksession, through wxsessiond.
  const checked = await session.request({ url: '/v1/session/check', method: 'POST' })
  assert.strictEqual(checked.statusCode, 200, JSON.stringify(checked.data))
  assert.deepStrictEqual(checked.data, { session_key_valid: true })

  // logout: POST /v1/logout ends the session at wxsessiond.
  const id = session.sessionId()
  await session.logout()
  assert.strictEqual(session.sessionId(), null)
  const after = await exchange('GET', PROXY_URL + '/v1/session', { headers: { Authorization: 'Bearer ' + id } })
  assert.strictEqual(after.status, 401)
  const backendAfter = await exchange('GET', PROXY_URL + '/api/profile', { headers: { Authorization: 'Bearer ' + id } })
  assert.strictEqual(backendAfter.status, 401)
  console.log('sdk: every route answered through the proxy')
}

async function buckets () {
  let counter = 0
  const login = (localAddress, headers = {}) => {
    counter += 1
    return exchange('POST', PROXY_URL + '/v1/login', {
      localAddress,
      headers: Object.assign({ 'Content-Type': 'application/json' }, headers),
      body: JSON.stringify({ code: 'bucket' + counter + '.' + process.pid })
    })
  }
  const expect = async (promise, status, what) => {
    const res = await promise
    assert.strictEqual(res.status, status, what + ': ' + JSON.stringify(res.body))
    if (status === 429) assert.strictEqual(res.body.error, 'rate_limited')
  }
  await expect(login('127.0.0.2'), 200, '127.0.0.2, first login')
  await expect(login('127.0.0.2'), 429, '127.0.0.2, past its burst')
  // Another client is not held back by the first one's bucket.
  await expect(login('127.0.0.3'), 200, '127.0.0.3, first login')
  // Headers a client sends do not move it out of its own bucket...
  await expect(login('127.0.0.2', { 'X-Forwarded-For': '198.51.100.7', 'X-Real-IP': '198.51.100.7' }),
    429, '127.0.0.2 claiming to be 198.51.100.7')
  await expect(login('127.0.0.3', { 'X-Forwarded-For': '127.0.0.9, 198.51.100.8' }),
    429, '127.0.0.3 claiming a chain of others')
  // ...nor into another client's: 127.0.0.4 naming 127.0.0.2 (whose bucket
  // is empty) still has its own.
  await expect(login('127.0.0.4', { 'X-Forwarded-For': '127.0.0.2', 'X-Real-IP': '127.0.0.2' }),
    200, '127.0.0.4 claiming to be 127.0.0.2')
  console.log('buckets: one login bucket per client address')
}

const modes = { sdk, buckets }
const mode = modes[process.argv[2]]
if (!mode || !PROXY_URL || !MOCK_URL || !APPID) {
  console.error('usage: PROXY_URL=... MOCK_URL=... APPID=... node through_proxy.js sdk|buckets')
  process.exit(2)
}
mode().then(() => process.exit(0), (err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
