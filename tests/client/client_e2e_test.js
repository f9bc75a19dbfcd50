// The client SDK (client/wxsession.js) against the real wxsessiond binary and
// mock-wechat on loopback, through a fake `wx` doing real HTTP: login,
// restarts, revocation, concurrency, logout, corrupt storage, network
// failures, open data and phone numbers; and uploads and downloads to a
// small app backend (backend.js) that checks the session with wxsessiond,
// with the session revoked in the middle.
// Run: WXSESSIOND_BIN=build/wxsessiond node --test tests/client/client_e2e_test.js
'use strict'

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { WxSession } = require('../../client/wxsession')
const { createHttpWx, authorizationOf } = require('./fake_wx')
const { startServers, APPID } = require('./servers')
const { startBackend } = require('./backend')

// GET /v1/session with `id`, straight over HTTP (not through the SDK).
function lookup (baseURL, id) {
  return new Promise((resolve, reject) => {
    const req = http.get(baseURL + '/v1/session',
      { headers: { Authorization: 'Bearer ' + id }, agent: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode))
      })
    req.on('error', reject)
  })
}

// GET `url` and parse the JSON answer (for mock-wechat's test routes).
function getJson (url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(url + ': HTTP ' + res.statusCode))
        else resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      })
    })
    req.on('error', reject)
  })
}

// A loopback port with nothing listening on it.
function refusedPort () {
  return new Promise((resolve) => {
    const probe = net.createServer()
    probe.listen(0, '127.0.0.1', () => {
      const port = probe.address().port
      probe.close(() => resolve(port))
    })
  })
}

describe('WxSession against wxsessiond', () => {
  let env
  before(async () => { env = await startServers() })
  after(async () => { if (env) await env.stop() })

  const open = (wx, extra) =>
    new WxSession(Object.assign({ baseURL: env.baseURL, storageKey: 'wxsession', wx }, extra))

  it('logs in on first use and sends the id as a Bearer token', async () => {
    const wx = createHttpWx()
    const session = open(wx)
    assert.strictEqual(session.sessionId(), null)
    const res = await session.request({ url: '/v1/session' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(res.data.appid, APPID)
    assert.match(res.data.openid, /^o/)
    assert.strictEqual(wx.loginCalls, 1)
    const id = session.sessionId()
    assert.match(id, /^[A-Za-z0-9_-]{43}$/)
    assert.deepStrictEqual(wx.storage.get('wxsession'), { v: 1, sessionId: id })
    const sent = wx.requests.filter((r) => r.url.endsWith('/v1/session'))
    assert.strictEqual(sent.length, 1)
    assert.strictEqual(authorizationOf(sent[0]), 'Bearer ' + id)
    // The header reaches the caller with the server's own case.
    assert.ok(res.header['Content-Type'] || res.header['content-type'])
  })

  it('login() answers the new id, with and without an explicit appid', async () => {
    const wx = createHttpWx()
    const id = await open(wx, { appid: APPID }).login()
    assert.strictEqual(await lookup(env.baseURL, id), 200)
    const other = await open(createHttpWx()).login()
    assert.notStrictEqual(other, id)
  })

  it('reuses the stored id after an app restart, without wx.login', async () => {
    const storage = new Map()
    const first = open(createHttpWx({ storage }))
    const id = await first.login()
    const wx = createHttpWx({ storage })
    const restarted = open(wx)
    assert.strictEqual(restarted.sessionId(), id)
    const res = await restarted.request({ url: '/v1/session' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(wx.loginCalls, 0)
  })

  it('logs in again transparently after the server revokes the session', async () => {
    const wx = createHttpWx({ user: 'revoked' })
    const session = open(wx)
    const before = await session.request({ url: '/v1/session' })
    const oldId = session.sessionId()
    assert.ok(await env.revokeAll() >= 1)
    assert.strictEqual(await lookup(env.baseURL, oldId), 401)
    const res = await session.request({ url: '/v1/session' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(res.data.openid, before.data.openid)
    assert.strictEqual(wx.loginCalls, 2)
    assert.notStrictEqual(session.sessionId(), oldId)
    assert.deepStrictEqual(wx.storage.get('wxsession').sessionId, session.sessionId())
  })

  it('makes one wx.login for 10 concurrent requests that all hit 401', async () => {
    const wx = createHttpWx({ user: 'burst' })
    const session = open(wx)
    const oldId = await session.login()
    await env.revokeAll()
    const results = await Promise.all(Array.from({ length: 10 },
      () => session.request({ url: '/v1/session' })))
    assert.deepStrictEqual(results.map((r) => r.statusCode), Array(10).fill(200))
    assert.strictEqual(wx.loginCalls, 2) // the first login, plus one
    const newId = session.sessionId()
    const lookups = wx.requests.filter((r) => r.url.endsWith('/v1/session'))
    assert.strictEqual(lookups.filter((r) => authorizationOf(r) === 'Bearer ' + oldId).length, 10)
    assert.strictEqual(lookups.filter((r) => authorizationOf(r) === 'Bearer ' + newId).length, 10)
  })

  it('makes one wx.login for 10 concurrent requests on a fresh install', async () => {
    const wx = createHttpWx({ user: 'fresh' })
    const session = open(wx)
    const results = await Promise.all(Array.from({ length: 10 },
      () => session.request({ url: '/v1/session' })))
    assert.deepStrictEqual(results.map((r) => r.statusCode), Array(10).fill(200))
    assert.strictEqual(wx.loginCalls, 1)
  })

  it('logout ends the session on the server and forgets it', async () => {
    const wx = createHttpWx()
    const session = open(wx)
    const id = await session.login()
    await session.logout()
    assert.strictEqual(session.sessionId(), null)
    assert.strictEqual(wx.storage.has('wxsession'), false)
    assert.strictEqual(await lookup(env.baseURL, id), 401)
    // The next request logs in anew.
    const res = await session.request({ url: '/v1/session' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(wx.loginCalls, 2)
    // Logging out twice, or with nothing stored, is not an error.
    await session.logout()
    await session.logout()
  })

  it('discards a corrupt stored value and logs in', async () => {
    const corrupt = [
      'not json {',
      '{"v":1,"sessionId":"has spaces in it"}',
      { v: 1, sessionId: 'abc\r\nX-Injected: 1' },
      { v: 1, sessionId: 42 },
      { v: 99, sessionId: 'abc' },
      { sessionId: 'abc' },
      ['abc'],
      12345
    ]
    for (const value of corrupt) {
      const wx = createHttpWx()
      wx.storage.set('wxsession', value)
      const session = open(wx)
      assert.strictEqual(session.sessionId(), null, JSON.stringify(value))
      assert.strictEqual(wx.storage.has('wxsession'), false, JSON.stringify(value))
      const res = await session.request({ url: '/v1/session' })
      assert.strictEqual(res.statusCode, 200)
      assert.strictEqual(wx.loginCalls, 1)
    }
  })

  it('keeps a stored id that is valid but unknown to the server until the 401', async () => {
    const wx = createHttpWx()
    wx.storage.set('wxsession', { v: 1, sessionId: 'A'.repeat(43) })
    const session = open(wx)
    assert.strictEqual(session.sessionId(), 'A'.repeat(43))
    const res = await session.request({ url: '/v1/session' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(wx.loginCalls, 1)
    assert.notStrictEqual(session.sessionId(), 'A'.repeat(43))
  })

  it('surfaces the server\'s errors with their code and status', async () => {
    const wx = createHttpWx()
    const session = open(wx)
    wx.nextCodes.push('blocked', 'invalid', 'limit')
    await assert.rejects(session.login(), (err) => {
      assert.strictEqual(err.code, 'login_blocked')
      assert.strictEqual(err.statusCode, 403)
      assert.match(err.message, /^login: /)
      return true
    })
    await assert.rejects(session.request({ url: '/v1/session' }),
      { code: 'invalid_code', statusCode: 400 })
    await assert.rejects(session.login(), (err) => {
      assert.strictEqual(err.code, 'rate_limited')
      assert.strictEqual(err.statusCode, 429)
      assert.ok(err.retryAfter >= 1)
      return true
    })
    assert.strictEqual(session.sessionId(), null)
    const wrongApp = open(createHttpWx(), { appid: 'wxnotconfigured00' })
    await assert.rejects(wrongApp.login(), { code: 'unknown_app', statusCode: 400 })
  })

  it('returns other error statuses without retrying', async () => {
    const wx = createHttpWx()
    const session = open(wx)
    await session.login()
    const res = await session.request({ url: '/v1/no-such-route' })
    assert.strictEqual(res.statusCode, 404)
    assert.strictEqual(res.data.error, 'not_found')
    assert.strictEqual(wx.requests.filter((r) => r.url.endsWith('/v1/no-such-route')).length, 1)
    assert.strictEqual(wx.loginCalls, 1)
  })

  it('rejects with the wx errMsg when the server cannot be reached', async () => {
    const port = await refusedPort()
    const wx = createHttpWx()
    const unreachable = new WxSession({ baseURL: 'http://127.0.0.1:' + port, wx })
    await assert.rejects(unreachable.request({ url: '/v1/session' }), (err) => {
      assert.strictEqual(err.code, 'network_error')
      assert.match(err.errMsg, /^request:fail .*ECONNREFUSED/)
      assert.strictEqual(err.message, err.errMsg)
      return true
    })
    assert.strictEqual(unreachable.sessionId(), null)
  })

  it('keeps the session through a network failure and uses it once the server is back', async () => {
    const wx = createHttpWx()
    const session = open(wx)
    const id = await session.login()
    await env.stopServer()
    try {
      await assert.rejects(session.request({ url: '/v1/session' }), { code: 'network_error' })
      assert.strictEqual(session.sessionId(), id)
    } finally {
      await env.startServerAgain()
    }
    const res = await session.request({ url: '/v1/session' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(session.sessionId(), id)
    assert.strictEqual(wx.loginCalls, 1)
  })

  // Open data as WeChat makes it: AES-128-CBC under the user's newest
  // session_key (read from mock-wechat), PKCS#7, base64.
  async function encryptForUser (session, payload) {
    const me = await session.request({ url: '/v1/session' })
    assert.strictEqual(me.statusCode, 200)
    const key = await getJson(env.mockURL + '/mock/session_key?appid=' +
      encodeURIComponent(APPID) + '&openid=' + encodeURIComponent(me.data.openid))
    const iv = crypto.randomBytes(16)
    const cipher = crypto.createCipheriv('aes-128-cbc', Buffer.from(key.session_key, 'base64'), iv)
    const encrypted = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()])
    return { encryptedData: encrypted.toString('base64'), iv: iv.toString('base64') }
  }

  it('decrypts open data through the server', async () => {
    const session = open(createHttpWx({ user: 'opendata' }))
    const payload = {
      nickName: '微信用户',
      watermark: { appid: APPID, timestamp: Math.floor(Date.now() / 1000) }
    }
    const sealed = await encryptForUser(session, payload)
    assert.deepStrictEqual(await session.decrypt(sealed), payload)

    const foreign = await encryptForUser(session, { watermark: { appid: 'wxsomeoneelse0000', timestamp: 1 } })
    await assert.rejects(session.decrypt(foreign), { code: 'watermark_mismatch', statusCode: 422 })
    await assert.rejects(session.decrypt({ encryptedData: sealed.encryptedData, iv: 'c2hvcnQ=' }),
      { code: 'decrypt_failed', statusCode: 422 })
  })

  it('answers decrypt_failed for data sealed before a later wx.login', async () => {
    const wx = createHttpWx({ user: 'stalekey' })
    const session = open(wx)
    const sealed = await encryptForUser(session, { watermark: { appid: APPID, timestamp: 1 } })
    // The revoked session makes the client log in again, and that login
    // gives the user a new session_key: the sealed data is now unreadable.
    await env.revokeAll()
    await assert.rejects(session.decrypt(sealed), (err) => {
      assert.strictEqual(err.code, 'decrypt_failed')
      assert.strictEqual(err.statusCode, 422)
      return true
    })
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('gets the phone number through the server', async () => {
    const wx = createHttpWx()
    const session = open(wx)
    assert.deepStrictEqual(await session.phoneNumber('plain.' + process.pid),
      { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86' })
    assert.deepStrictEqual(await session.phoneNumber('us.' + process.pid),
      { phoneNumber: '+1 2025550123', purePhoneNumber: '2025550123', countryCode: '1' })
    // WeChat sometimes sends countryCode as a number; it arrives a string.
    assert.strictEqual((await session.phoneNumber('numeric.' + process.pid)).countryCode, '86')
    await assert.rejects(session.phoneNumber('otherapp.' + process.pid),
      { code: 'watermark_mismatch', statusCode: 422 })
    await assert.rejects(session.phoneNumber('invalid'), { code: 'invalid_code', statusCode: 400 })
    // A phone code is single-use, as at WeChat.
    await assert.rejects(session.phoneNumber('us.' + process.pid), { code: 'invalid_code' })
    assert.strictEqual(wx.loginCalls, 1)
  })

  describe('files, through an app backend', () => {
    let backend
    let dir
    before(async () => {
      backend = await startBackend(env.baseURL)
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxs-files-'))
    })
    after(async () => {
      if (backend) await backend.stop()
      if (dir) fs.rmSync(dir, { recursive: true, force: true })
    })

    // A file of `size` random bytes; resolves to { filePath, data }.
    const makeFile = (name, size) => {
      const data = crypto.randomBytes(size)
      const filePath = path.join(dir, name)
      fs.writeFileSync(filePath, data)
      return { filePath, data }
    }
    const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex')

    it('uploads with a 401 in the middle: one re-login, one retry, progress follows the retry', async () => {
      const wx = createHttpWx({ user: 'uploader' })
      const session = open(wx, { trustedOrigins: [backend.url] })
      const me = await session.request({ url: '/v1/session' })
      const oldId = session.sessionId()
      const file = makeFile('avatar.png', 200 * 1024)
      // The session ends while the first upload's body is arriving.
      let revokedDuring = 0
      backend.onUploadBody = async () => {
        if (revokedDuring > 0) return
        revokedDuring = wx.uploads.length
        assert.ok(await env.revokeAll() >= 1)
      }
      const events = []
      const p = session.uploadFile({
        url: backend.url + '/api/upload',
        filePath: file.filePath,
        name: 'avatar',
        formData: { kind: 'profile' }
      })
      // Registered before the retry; it must see the retried transfer.
      p.task.onProgressUpdate((e) => events.push(Object.assign({ attempt: wx.uploads.length }, e)))
      let res
      try {
        res = await p
      } finally {
        backend.onUploadBody = null
      }
      assert.strictEqual(revokedDuring, 1)
      assert.strictEqual(res.statusCode, 200)
      const body = JSON.parse(res.data)
      assert.strictEqual(body.openid, me.data.openid)
      assert.strictEqual(body.field, 'avatar')
      assert.strictEqual(body.filename, 'avatar.png')
      assert.strictEqual(body.size, file.data.length)
      assert.strictEqual(body.sha256, sha256(file.data))
      assert.deepStrictEqual(body.fields, { kind: 'profile' })

      // One wx.login more, and exactly two uploads: the old id, then the new.
      assert.strictEqual(wx.loginCalls, 2)
      const newId = session.sessionId()
      assert.notStrictEqual(newId, oldId)
      assert.deepStrictEqual(wx.uploads.map((u) => authorizationOf(u)), ['Bearer ' + oldId, 'Bearer ' + newId])
      const mine = backend.uploads.slice(-2)
      assert.deepStrictEqual(mine.map((u) => u.status), [401, 200])
      const retried = events.filter((e) => e.attempt === 2)
      assert.ok(retried.length >= 2, JSON.stringify(events))
      const last = retried[retried.length - 1]
      assert.strictEqual(last.progress, 100)
      assert.strictEqual(last.totalBytesSent, last.totalBytesExpectedToSend)
      assert.ok(last.totalBytesSent > file.data.length)
    })

    it('downloads after the session was revoked: re-login, retry, the same bytes', async () => {
      const wx = createHttpWx({ user: 'downloader' })
      const session = open(wx, { trustedOrigins: [backend.url] })
      try {
        const file = makeFile('photo.jpg', 96 * 1024)
        const up = await session.uploadFile({ url: backend.url + '/api/upload', filePath: file.filePath, name: 'photo' })
        assert.strictEqual(up.statusCode, 200)
        const stored = JSON.parse(up.data).stored
        await env.revokeAll()
        const progress = []
        const res = await session.downloadFile({
          url: backend.url + '/api/files/' + stored,
          onProgressUpdate: (e) => progress.push(e.totalBytesWritten)
        })
        assert.strictEqual(res.statusCode, 200)
        assert.strictEqual(sha256(fs.readFileSync(res.tempFilePath)), sha256(file.data))
        assert.strictEqual(progress[progress.length - 1], file.data.length)
        assert.strictEqual(wx.loginCalls, 2)
        assert.strictEqual(wx.downloads.length, 2)
      } finally {
        wx.cleanup()
      }
    })

    it('aborts an upload in flight: rejects aborted, no login, nothing stored', async () => {
      const wx = createHttpWx({ user: 'aborter' })
      const session = open(wx, { trustedOrigins: [backend.url] })
      await session.login()
      const file = makeFile('big.bin', 512 * 1024)
      let arrived
      const bodyArrived = new Promise((resolve) => { arrived = resolve })
      let release
      backend.onUploadBody = () => {
        arrived()
        return new Promise((resolve) => { release = resolve })
      }
      const before = backend.files.size
      try {
        const p = session.uploadFile({ url: backend.url + '/api/upload', filePath: file.filePath, name: 'f' })
        // (If the upload ends first, without reaching the backend, fail now.)
        await Promise.race([bodyArrived, p.then(() => { throw new Error('upload ended before its body arrived') })])
        p.task.abort()
        await assert.rejects(p, { code: 'aborted', errMsg: 'uploadFile:fail abort' })
      } finally {
        backend.onUploadBody = null
        if (release) release()
      }
      assert.strictEqual(wx.loginCalls, 1)
      assert.strictEqual(wx.uploads.length, 1)
      assert.strictEqual(backend.files.size, before)
    })
  })
})
