// The client SDK (client/wxsession.js) against a scripted `wx`: the rules
// that need exact control over replies and their timing. The end-to-end
// tests against the real server are in client_e2e_test.js.
'use strict'

const { describe, it } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const path = require('node:path')

const { WxSession } = require('../../client/wxsession')
const { createScriptedWx, authorizationOf } = require('./fake_wx')

const BASE = 'https://api.example.com'

// A stand-in for wxsessiond: POST /v1/login mints ids, other routes need a
// live one. `live` and `route` (path -> handler) can be changed by a test.
function fakeServer () {
  const server = { issued: 0, live: new Set(), route: {} }
  server.respond = (req) => {
    const pathname = req.url.slice(BASE.length).split('?')[0]
    if (server.route[pathname]) return server.route[pathname](req)
    if (pathname === '/v1/login') {
      server.issued += 1
      const id = 'id-' + server.issued
      server.live.add(id)
      return { statusCode: 200, data: { session_id: id, expires_in: 60, expires_at: 1 } }
    }
    const auth = authorizationOf(req) || ''
    if (!server.live.has(auth.replace(/^Bearer /, ''))) {
      return {
        statusCode: 401,
        data: { error: 'invalid_session', message: 'the session is unknown' },
        header: { 'WWW-Authenticate': 'Bearer realm="wxsessiond", error="invalid_token"' }
      }
    }
    if (pathname === '/v1/logout') {
      server.live.delete(auth.replace(/^Bearer /, ''))
      return { statusCode: 204, data: '' }
    }
    return { statusCode: 200, data: { path: pathname, auth } }
  }
  return server
}

function setup (extra) {
  const server = fakeServer()
  const wx = createScriptedWx(server.respond)
  const session = new WxSession(Object.assign({ baseURL: BASE, wx }, extra))
  return { server, wx, session }
}

const calls = (wx, pathname) => wx.requests.filter((r) => r.url.split('?')[0] === BASE + pathname)

describe('options', () => {
  it('needs an http(s) baseURL and a wx', () => {
    const wx = createScriptedWx(() => ({ statusCode: 200 }))
    assert.throws(() => new WxSession({ wx }), TypeError)
    assert.throws(() => new WxSession({ baseURL: 'api.example.com', wx }), TypeError)
    assert.throws(() => new WxSession({ baseURL: BASE }), /no wx API/)
    assert.throws(() => new WxSession({ baseURL: BASE, wx, appid: 5 }), TypeError)
  })

  it('uses the global wx when none is passed', async () => {
    const server = fakeServer()
    global.wx = createScriptedWx(server.respond)
    try {
      const session = new WxSession({ baseURL: BASE })
      assert.strictEqual(await session.login(), 'id-1')
      assert.strictEqual(global.wx.loginCalls, 1)
    } finally {
      delete global.wx
    }
  })

  it('sends appid with the code only when given, and passes timeout on', async () => {
    const { wx, session } = setup({ appid: 'wxabc', timeout: 1234 })
    await session.login()
    const login = calls(wx, '/v1/login')[0]
    assert.strictEqual(login.method, 'POST')
    assert.strictEqual(login.data.appid, 'wxabc')
    assert.match(login.data.code, /^alice\./)
    assert.strictEqual(login.timeout, 1234)
    const plain = setup()
    await plain.session.login()
    assert.deepStrictEqual(Object.keys(calls(plain.wx, '/v1/login')[0].data), ['code'])
  })
})

describe('request', () => {
  it('resolves paths against baseURL and keeps the caller\'s method, data and headers', async () => {
    const { wx, session } = setup({ baseURL: BASE + '/' })
    await session.request({ url: 'api/a', method: 'PUT', data: { x: 1 }, header: { 'X-Trace': 't' } })
    await session.request({ url: '/api/b' })
    await session.request({ url: BASE + '/api/c' })
    const [a, b, c] = wx.requests.slice(1)
    assert.strictEqual(a.url, BASE + '/api/a')
    assert.strictEqual(a.method, 'PUT')
    assert.deepStrictEqual(a.data, { x: 1 })
    assert.strictEqual(a.header['X-Trace'], 't')
    assert.strictEqual(b.url, BASE + '/api/b')
    assert.strictEqual(b.method, 'GET')
    assert.strictEqual(c.url, BASE + '/api/c')
  })

  it('replaces a caller\'s Authorization header with the session', async () => {
    const { wx, session } = setup()
    await session.request({ url: '/api/a', header: { authorization: 'Bearer stale', AUTHORIZATION: 'x' } })
    const sent = wx.requests[1].header
    assert.deepStrictEqual(Object.keys(sent), ['Authorization'])
    assert.strictEqual(sent.Authorization, 'Bearer id-1')
  })

  it('never sends the session to another origin unless trusted', async () => {
    const { wx, session } = setup({ trustedOrigins: ['https://files.example.com'] })
    await assert.rejects(session.request({ url: 'https://evil.example.net/steal' }),
      { code: 'invalid_argument' })
    await assert.rejects(session.request({ url: 'https://api.example.com.evil.net/x' }),
      { code: 'invalid_argument' })
    await assert.rejects(session.request({}), { code: 'invalid_argument' })
    assert.strictEqual(wx.requests.length, 0)
    assert.strictEqual(wx.loginCalls, 0)
    const res = await session.request({ url: 'https://FILES.example.com/f' })
    assert.strictEqual(res.statusCode, 200)
  })

  it('logs in once and retries once on 401 invalid_session, then returns the 401', async () => {
    const { server, wx, session } = setup()
    server.route['/api/always401'] = () => ({
      statusCode: 401, data: { error: 'invalid_session', message: 'gone' }
    })
    const res = await session.request({ url: '/api/always401' })
    assert.strictEqual(res.statusCode, 401)
    assert.strictEqual(res.data.error, 'invalid_session')
    assert.strictEqual(wx.loginCalls, 2)
    assert.strictEqual(calls(wx, '/api/always401').length, 2)
  })

  it('recognises nginx auth_request\'s 401 by its Bearer challenge', async () => {
    const { server, wx, session } = setup()
    await session.login()
    let first = true
    server.route['/api/profile'] = (req) => {
      if (first) {
        first = false
        return {
          statusCode: 401,
          data: '<html><head><title>401 Authorization Required</title></head></html>',
          header: { 'Www-Authenticate': 'Bearer realm="wxsessiond", error="invalid_token"' }
        }
      }
      return { statusCode: 200, data: { auth: authorizationOf(req) } }
    }
    const res = await session.request({ url: '/api/profile' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(res.data.auth, 'Bearer id-2')
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('returns the API\'s own 401s, 403s and 5xx without logging in again', async () => {
    const { server, wx, session } = setup()
    server.route['/api/admin'] = () => ({ statusCode: 401, data: { error: 'not_admin' } })
    server.route['/api/basic'] = () => ({
      statusCode: 401, data: 'no', header: { 'WWW-Authenticate': 'Basic realm="x"' }
    })
    server.route['/api/forbidden'] = () => ({ statusCode: 403, data: { error: 'invalid_session' } })
    server.route['/api/down'] = () => ({ statusCode: 503, data: { error: 'store_unavailable' } })
    for (const url of ['/api/admin', '/api/basic', '/api/forbidden', '/api/down']) {
      const res = await session.request({ url })
      assert.notStrictEqual(res.statusCode, 200)
      assert.strictEqual(calls(wx, url).length, 1, url)
    }
    assert.strictEqual(wx.loginCalls, 1)
    assert.strictEqual(session.sessionId(), 'id-1')
  })

  it('shares one wx.login even when a 401 arrives after the new login finished', async () => {
    const { server, wx, session } = setup()
    const oldId = await session.login()
    server.live.clear() // revoked
    let release
    const held = new Promise((resolve) => { release = resolve })
    let seen = 0
    server.route['/api/x'] = (req) => {
      const auth = authorizationOf(req)
      if (auth === 'Bearer ' + oldId) {
        seen += 1
        const answer = { statusCode: 401, data: { error: 'invalid_session' } }
        // The third reply with the old id comes back only after the other
        // two requests have logged in again and retried.
        return seen === 3 ? held.then(() => answer) : answer
      }
      return { statusCode: 200, data: { auth } }
    }
    const first = [session.request({ url: '/api/x' }), session.request({ url: '/api/x' })]
    const late = session.request({ url: '/api/x' })
    const done = await Promise.all(first)
    assert.deepStrictEqual(done.map((r) => r.statusCode), [200, 200])
    assert.strictEqual(session.sessionId(), 'id-2')
    release()
    const res = await late
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(res.data.auth, 'Bearer id-2')
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('rejects with the wx errMsg on a network failure and keeps the id', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.route['/api/x'] = () => ({ fail: 'request:fail timeout' })
    await assert.rejects(session.request({ url: '/api/x' }), (err) => {
      assert.ok(err instanceof Error)
      assert.strictEqual(err.code, 'network_error')
      assert.strictEqual(err.errMsg, 'request:fail timeout')
      assert.match(err.message, /request:fail timeout/)
      return true
    })
    assert.strictEqual(session.sessionId(), 'id-1')
    assert.strictEqual(wx.loginCalls, 1)
  })

  it('rejects when the login it needs fails, and a later call tries again', async () => {
    const { wx, session } = setup()
    wx.loginFailure = 'login:fail network unavailable'
    await assert.rejects(session.request({ url: '/api/x' }), (err) => {
      assert.strictEqual(err.code, 'wx_login_failed')
      assert.strictEqual(err.errMsg, 'login:fail network unavailable')
      return true
    })
    wx.loginFailure = null
    const res = await session.request({ url: '/api/x' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(wx.loginCalls, 2)
  })
})

describe('login errors', () => {
  const loginAnswer = (answer) => {
    const { server, wx, session } = setup()
    server.route['/v1/login'] = () => answer
    return { wx, session }
  }

  it('carries the server\'s error, status, Retry-After and request id', async () => {
    const { session } = loginAnswer({
      statusCode: 429,
      data: { error: 'rate_limited', message: 'WeChat quota reached' },
      header: { 'retry-after': '7', 'X-Request-Id': 'req-1' }
    })
    await assert.rejects(session.login(), (err) => {
      assert.strictEqual(err.name, 'WxSessionError')
      assert.strictEqual(err.code, 'rate_limited')
      assert.strictEqual(err.statusCode, 429)
      assert.strictEqual(err.retryAfter, 7)
      assert.strictEqual(err.requestId, 'req-1')
      assert.strictEqual(err.message, 'login: WeChat quota reached')
      return true
    })
    assert.strictEqual(session.sessionId(), null)
  })

  it('names a reply that is not wxsessiond\'s JSON', async () => {
    await assert.rejects(loginAnswer({ statusCode: 502, data: '<html>bad gateway</html>' }).session.login(),
      { code: 'http_error', statusCode: 502, message: 'login: HTTP 502' })
    await assert.rejects(loginAnswer({ statusCode: 200, data: { hello: 1 } }).session.login(),
      { code: 'bad_response', statusCode: 200 })
    // An id that could not be sent in a header is refused, not stored.
    const bad = loginAnswer({ statusCode: 200, data: { session_id: 'two words' } })
    await assert.rejects(bad.session.login(), { code: 'bad_response' })
    assert.strictEqual(bad.wx.storage.size, 0)
  })

  it('parses a JSON error that arrived as text', async () => {
    const { session } = loginAnswer({ statusCode: 400, data: '{"error":"invalid_code","message":"used"}' })
    await assert.rejects(session.login(), { code: 'invalid_code', statusCode: 400, message: 'login: used' })
  })

  it('reports wx.login giving no code', async () => {
    const { wx, session } = setup()
    wx.login = (call) => setImmediate(() => call.success({ errMsg: 'login:ok' }))
    await assert.rejects(session.login(), { code: 'wx_login_failed' })
  })
})

describe('storage', () => {
  it('stores a versioned object and reads it back', async () => {
    const { wx, session } = setup({ storageKey: 'k' })
    await session.login()
    assert.deepStrictEqual(wx.storage.get('k'), { v: 1, sessionId: 'id-1' })
    const again = new WxSession({ baseURL: BASE, storageKey: 'k', wx })
    assert.strictEqual(again.sessionId(), 'id-1')
    // The same object stored as a JSON string is read too.
    wx.storage.set('k', JSON.stringify({ v: 1, sessionId: 'id-9' }))
    assert.strictEqual(new WxSession({ baseURL: BASE, storageKey: 'k', wx }).sessionId(), 'id-9')
  })

  it('discards corrupt values', () => {
    const values = ['{', 'plain-id', '{"v":1}', { v: 1, sessionId: '' }, { v: 1, sessionId: 'a b' },
      { v: 1, sessionId: 'x'.repeat(1025) }, { v: 2, sessionId: 'abc' }, null, true, 0]
    for (const value of values) {
      const wx = createScriptedWx(() => ({ statusCode: 500 }))
      wx.storage.set('wxsession', value)
      assert.strictEqual(new WxSession({ baseURL: BASE, wx }).sessionId(), null, JSON.stringify(value))
      assert.strictEqual(wx.storage.has('wxsession'), false, JSON.stringify(value))
    }
  })

  it('works on when storage throws', async () => {
    const { wx, session } = setup()
    wx.setStorageSync = () => { throw new Error('exceed storage max size') }
    assert.strictEqual(await session.login(), 'id-1')
    const res = await session.request({ url: '/api/x' })
    assert.strictEqual(res.statusCode, 200)
    wx.getStorageSync = () => { throw new Error('storage unavailable') }
    assert.strictEqual(new WxSession({ baseURL: BASE, wx }).sessionId(), null)
  })
})

describe('logout', () => {
  it('does nothing without a session', async () => {
    const { wx, session } = setup()
    await session.logout()
    assert.strictEqual(wx.requests.length, 0)
  })

  it('waits for a login in flight, then ends that session', async () => {
    const { server, wx, session } = setup()
    const login = session.login()
    const logout = session.logout()
    assert.strictEqual(await login, 'id-1')
    await logout
    assert.strictEqual(session.sessionId(), null)
    assert.strictEqual(server.live.size, 0)
    assert.strictEqual(authorizationOf(calls(wx, '/v1/logout')[0]), 'Bearer id-1')
  })

  it('forgets the id even when the server cannot confirm', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.route['/v1/logout'] = () => ({ statusCode: 503, data: { error: 'store_unavailable', message: 'disk' } })
    await assert.rejects(session.logout(), { code: 'store_unavailable', statusCode: 503 })
    assert.strictEqual(session.sessionId(), null)
    assert.strictEqual(wx.storage.has('wxsession'), false)
    await session.login()
    server.route['/v1/logout'] = () => ({ fail: 'request:fail' })
    await assert.rejects(session.logout(), { code: 'network_error' })
    assert.strictEqual(session.sessionId(), null)
  })

  it('treats an already-ended session as logged out', async () => {
    const { server, session } = setup()
    await session.login()
    server.live.clear()
    await session.logout()
    assert.strictEqual(session.sessionId(), null)
  })
})

describe('decrypt and phoneNumber', () => {
  it('refuse missing input without a request', async () => {
    const { wx, session } = setup()
    await assert.rejects(session.decrypt({ iv: 'x' }), { code: 'invalid_argument' })
    await assert.rejects(session.decrypt(), { code: 'invalid_argument' })
    await assert.rejects(session.phoneNumber(undefined), { code: 'invalid_argument' })
    await assert.rejects(session.phoneNumber(''), { code: 'invalid_argument' })
    assert.strictEqual(wx.requests.length, 0)
  })

  it('post with the session and unwrap the answer', async () => {
    const { server, wx, session } = setup()
    server.route['/v1/decrypt'] = (req) => ({ statusCode: 200, data: { data: { got: req.data, auth: authorizationOf(req) } } })
    server.route['/v1/phone'] = (req) => ({
      statusCode: 200,
      data: { phoneNumber: '+86 138', purePhoneNumber: '138', countryCode: '86', extra: req.data.code }
    })
    const plain = await session.decrypt({ encryptedData: 'ZW5j', iv: 'aXY=' })
    assert.deepStrictEqual(plain, { got: { encryptedData: 'ZW5j', iv: 'aXY=' }, auth: 'Bearer id-1' })
    const phone = await session.phoneNumber('phone-code')
    assert.deepStrictEqual(phone, { phoneNumber: '+86 138', purePhoneNumber: '138', countryCode: '86' })
    assert.strictEqual(calls(wx, '/v1/phone')[0].method, 'POST')
  })

  it('turn error replies into Errors', async () => {
    const { server, session } = setup()
    server.route['/v1/decrypt'] = () => ({ statusCode: 422, data: { error: 'decrypt_failed', message: 'stale key' } })
    server.route['/v1/phone'] = () => ({ statusCode: 400, data: { error: 'invalid_code', message: 'used' } })
    await assert.rejects(session.decrypt({ encryptedData: 'a', iv: 'b' }),
      { code: 'decrypt_failed', statusCode: 422, message: 'decrypt: stale key' })
    await assert.rejects(session.phoneNumber('c'), { code: 'invalid_code', statusCode: 400 })
    server.route['/v1/decrypt'] = () => ({ statusCode: 200, data: { nodata: 1 } })
    await assert.rejects(session.decrypt({ encryptedData: 'a', iv: 'b' }), { code: 'bad_response' })
  })
})

// Resolves once `predicate()` holds, polling each turn of the event loop;
// fails after `ms`.
async function until (predicate, ms = 2000) {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setImmediate(resolve))
  }
}

describe('request options, task and callbacks', () => {
  it('forwards every wx.request option it does not own', async () => {
    const { wx, session } = setup({ timeout: 1000 })
    const options = {
      url: '/api/x',
      method: 'POST',
      data: 'raw',
      header: { 'X-A': '1' },
      timeout: 2500,
      dataType: 'other',
      responseType: 'arraybuffer',
      enableHttp2: true,
      enableCache: true,
      enableQuic: true,
      enableHttpDNS: true,
      httpDNSServiceId: 'svc',
      enableChunked: true,
      forceCellularNetwork: true,
      useHighPerformanceMode: true,
      redirect: 'manual'
    }
    await session.request(options)
    const sent = calls(wx, '/api/x')[0]
    for (const key of Object.keys(options)) {
      if (key === 'url' || key === 'header') continue
      assert.deepStrictEqual(sent[key], options[key], key)
    }
    assert.strictEqual(sent.header['X-A'], '1')
    // The constructor's timeout applies only where the call sets none.
    await session.request({ url: '/api/y' })
    assert.strictEqual(calls(wx, '/api/y')[0].timeout, 1000)
    // The caller's object is left as it was.
    assert.deepStrictEqual(options.header, { 'X-A': '1' })
  })

  it('resolves to wx\'s whole result', async () => {
    const { server, session } = setup()
    server.route['/api/c'] = () => ({ statusCode: 200, data: 'x', header: { A: 'b' }, cookies: ['k=v'] })
    const res = await session.request({ url: '/api/c' })
    assert.deepStrictEqual(res, { statusCode: 200, data: 'x', header: { A: 'b' }, cookies: ['k=v'], errMsg: 'request:ok' })
  })

  it('aborts a request in flight: rejects with aborted, no re-login', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.live.clear() // the reply would be a 401 that asks for a login
    let release
    server.route['/api/slow'] = () => new Promise((resolve) => { release = resolve })
    const p = session.request({ url: '/api/slow' })
    await until(() => release !== undefined)
    p.task.abort()
    await assert.rejects(p, (err) => {
      assert.strictEqual(err.code, 'aborted')
      assert.strictEqual(err.name, 'WxSessionError')
      assert.strictEqual(err.errMsg, 'request:fail abort')
      return true
    })
    assert.strictEqual(wx.aborts, 1)
    release({ statusCode: 401, data: { error: 'invalid_session' } })
    await new Promise((resolve) => setImmediate(resolve))
    assert.strictEqual(wx.loginCalls, 1)
    assert.strictEqual(calls(wx, '/api/slow').length, 1)
    assert.strictEqual(session.sessionId(), 'id-1')
    p.task.abort() // a second abort does nothing
    assert.strictEqual(wx.aborts, 1)
  })

  it('an abort wx honours too late: the 401 that still arrives does not log in', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.live.clear()
    const request = wx.request
    let answered
    wx.request = (call) => {
      // The reply is already on its way: abort() has no effect on wx's side.
      const task = request(Object.assign({}, call, {
        success: (res) => { answered = () => call.success(res) }
      }))
      task.abort = () => {}
      return task
    }
    const p = session.request({ url: '/api/x' })
    await until(() => answered !== undefined)
    p.task.abort()
    answered()
    await assert.rejects(p, { code: 'aborted' })
    await new Promise((resolve) => setImmediate(resolve))
    assert.strictEqual(wx.loginCalls, 1)
    assert.strictEqual(calls(wx, '/api/x').length, 1)
  })

  it('aborts while the login it waits for is in flight: sends nothing', async () => {
    const { wx, session } = setup()
    const p = session.request({ url: '/api/x' })
    p.task.abort()
    await assert.rejects(p, { code: 'aborted' })
    assert.strictEqual(await session.login(), 'id-1') // the shared login went on
    await new Promise((resolve) => setImmediate(resolve))
    assert.strictEqual(calls(wx, '/api/x').length, 0)
    assert.strictEqual(wx.loginCalls, 1)
  })

  it('aborts during the re-login after a 401: no retry is sent', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.live.clear()
    let releaseLogin
    const realLogin = wx.login
    wx.login = (call) => { releaseLogin = () => realLogin(call) }
    const p = session.request({ url: '/api/x' })
    await until(() => releaseLogin !== undefined)
    p.task.abort()
    await assert.rejects(p, { code: 'aborted' })
    releaseLogin()
    await until(() => session.sessionId() === 'id-2')
    assert.strictEqual(calls(wx, '/api/x').length, 1)
  })

  it('an abort after the result does nothing', async () => {
    const { wx, session } = setup()
    const p = session.request({ url: '/api/x' })
    assert.strictEqual((await p).statusCode, 200)
    p.task.abort()
    assert.strictEqual(wx.aborts, 0)
  })

  it('calls success and complete once, with the result after a re-login', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.live.clear()
    const seen = []
    const res = await session.request({
      url: '/api/x',
      success: (r) => seen.push(['success', r]),
      fail: (e) => seen.push(['fail', e]),
      complete: (r) => seen.push(['complete', r])
    })
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepStrictEqual(seen.map((e) => e[0]), ['success', 'complete'])
    assert.strictEqual(seen[0][1], res)
    assert.strictEqual(seen[1][1], res)
    assert.strictEqual(res.data.auth, 'Bearer id-2')
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('calls fail and complete once with the error, and the promise needs no catch', async () => {
    const { server, session } = setup()
    server.route['/api/x'] = () => ({ fail: 'request:fail timeout' })
    const seen = []
    await new Promise((resolve) => {
      session.request({
        url: '/api/x',
        success: () => seen.push('success'),
        fail: (err) => seen.push('fail:' + err.code + ':' + err.errMsg),
        complete: (err) => { seen.push('complete:' + err.code); resolve() }
      })
    })
    assert.deepStrictEqual(seen, ['fail:network_error:request:fail timeout', 'complete:network_error'])
    // An aborted call reports through fail too.
    let aborted
    const p = session.request({ url: '/api/x', fail: (err) => { aborted = err } })
    p.task.abort()
    await assert.rejects(p, { code: 'aborted' })
    await until(() => aborted !== undefined)
    assert.strictEqual(aborted.code, 'aborted')
  })

  it('forwards the task\'s header and chunk events of the current transfer', async () => {
    const { server, session } = setup()
    await session.login()
    server.route['/api/x'] = () => ({ statusCode: 200, data: {}, headers: { 'X-H': '1' } })
    const headers = []
    const p = session.request({ url: '/api/x', enableChunked: true })
    p.task.onHeadersReceived((e) => headers.push(e.header))
    const removed = () => assert.fail('removed listener called')
    p.task.onHeadersReceived(removed)
    p.task.offHeadersReceived(removed)
    assert.strictEqual(typeof p.task.onChunkReceived, 'function')
    await p
    assert.deepStrictEqual(headers, [{ 'X-H': '1' }])
  })
})

describe('uploadFile and downloadFile', () => {
  it('upload with the session and the options given', async () => {
    const { server, wx, session } = setup()
    server.route['/api/avatar'] = (req) => ({ statusCode: 200, data: JSON.stringify({ auth: authorizationOf(req) }) })
    const res = await session.uploadFile({
      url: '/api/avatar', filePath: 'wxfile://tmp/a.png', name: 'file', formData: { kind: 'avatar' },
      header: { 'X-A': '1', Authorization: 'stale' }, timeout: 9000
    })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(JSON.parse(res.data).auth, 'Bearer id-1')
    const sent = calls(wx, '/api/avatar')[0]
    assert.strictEqual(sent.api, 'uploadFile')
    assert.strictEqual(sent.filePath, 'wxfile://tmp/a.png')
    assert.strictEqual(sent.name, 'file')
    assert.deepStrictEqual(sent.formData, { kind: 'avatar' })
    assert.deepStrictEqual(sent.header, { 'X-A': '1', Authorization: 'Bearer id-1' })
    assert.strictEqual(sent.timeout, 9000)
    assert.strictEqual(sent.method, undefined)
  })

  it('upload refuses missing filePath or name, and foreign origins, without a call', async () => {
    const { wx, session } = setup()
    await assert.rejects(session.uploadFile({ url: '/api/a', name: 'file' }), { code: 'invalid_argument' })
    await assert.rejects(session.uploadFile({ url: '/api/a', filePath: 'x' }), { code: 'invalid_argument' })
    await assert.rejects(session.uploadFile({ url: 'https://evil.example.net/u', filePath: 'x', name: 'f' }),
      { code: 'invalid_argument' })
    await assert.rejects(session.downloadFile({}), { code: 'invalid_argument' })
    assert.strictEqual(wx.requests.length, 0)
    assert.strictEqual(wx.loginCalls, 0)
  })

  it('upload: 401 invalid_session → one login → one retry; progress follows the retry', async () => {
    const { server, wx, session } = setup()
    const oldId = await session.login()
    server.live.clear()
    let attempt = 0
    server.route['/api/up'] = (req) => {
      attempt += 1
      if (authorizationOf(req) === 'Bearer ' + oldId) {
        return {
          statusCode: 401,
          // wx.uploadFile hands the body over as text.
          data: '{"error":"invalid_session","message":"revoked"}',
          progress: [{ progress: 50, totalBytesSent: 5, totalBytesExpectedToSend: 10 }]
        }
      }
      return {
        statusCode: 201,
        data: 'ok',
        progress: [{ progress: 40, totalBytesSent: 4, totalBytesExpectedToSend: 10 },
          { progress: 100, totalBytesSent: 10, totalBytesExpectedToSend: 10 }]
      }
    }
    const fromOption = []
    const fromTask = []
    const p = session.uploadFile({
      url: '/api/up', filePath: 'f', name: 'file', onProgressUpdate: (e) => fromOption.push([attempt, e.progress])
    })
    p.task.onProgressUpdate((e) => fromTask.push([attempt, e.progress]))
    const res = await p
    assert.strictEqual(res.statusCode, 201)
    assert.strictEqual(res.data, 'ok')
    assert.strictEqual(wx.loginCalls, 2)
    assert.strictEqual(calls(wx, '/api/up').length, 2)
    assert.strictEqual(authorizationOf(calls(wx, '/api/up')[1]), 'Bearer id-2')
    const expected = [[1, 50], [2, 40], [2, 100]]
    assert.deepStrictEqual(fromOption, expected)
    assert.deepStrictEqual(fromTask, expected)
  })

  it('upload: an API\'s own 401 is returned, not retried; a second 401 is returned', async () => {
    const { server, wx, session } = setup()
    server.route['/api/own'] = () => ({ statusCode: 401, data: '{"error":"not_allowed"}' })
    server.route['/api/gone'] = () => ({ statusCode: 401, data: '{"error":"invalid_session"}' })
    assert.strictEqual((await session.uploadFile({ url: '/api/own', filePath: 'f', name: 'n' })).statusCode, 401)
    assert.strictEqual(calls(wx, '/api/own').length, 1)
    assert.strictEqual(wx.loginCalls, 1)
    assert.strictEqual((await session.uploadFile({ url: '/api/gone', filePath: 'f', name: 'n' })).statusCode, 401)
    assert.strictEqual(calls(wx, '/api/gone').length, 2)
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('uploads that meet the same revoked session share one login', async () => {
    const { server, wx, session } = setup()
    await session.login()
    server.live.clear()
    server.route['/api/up'] = (req) => server.live.has((authorizationOf(req) || '').slice(7))
      ? { statusCode: 200, data: 'ok' }
      : { statusCode: 401, data: '{"error":"invalid_session"}' }
    const results = await Promise.all([1, 2, 3].map(() =>
      session.uploadFile({ url: '/api/up', filePath: 'f', name: 'n' })))
    assert.deepStrictEqual(results.map((r) => r.statusCode), [200, 200, 200])
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('download: any 401 → one login → one retry, with the session and options', async () => {
    const { server, wx, session } = setup()
    const oldId = await session.login()
    server.live.clear()
    server.route['/api/file'] = (req) => authorizationOf(req) === 'Bearer ' + oldId
      ? { statusCode: 401, tempFilePath: 'wxfile://tmp/401' }
      : { statusCode: 200, tempFilePath: 'wxfile://tmp/ok', progress: [{ progress: 100, totalBytesWritten: 3, totalBytesExpectedToWrite: 3 }] }
    const progress = []
    const seen = []
    const res = await session.downloadFile({
      url: '/api/file', filePath: 'wxfile://usr/saved', timeout: 5, onProgressUpdate: (e) => progress.push(e.progress),
      success: (r) => seen.push(r.tempFilePath)
    })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(res.tempFilePath, 'wxfile://tmp/ok')
    assert.deepStrictEqual(progress, [100])
    await until(() => seen.length === 1)
    assert.deepStrictEqual(seen, ['wxfile://tmp/ok'])
    assert.strictEqual(wx.loginCalls, 2)
    const sent = calls(wx, '/api/file')
    assert.strictEqual(sent.length, 2)
    assert.strictEqual(sent[1].api, 'downloadFile')
    assert.strictEqual(sent[1].filePath, 'wxfile://usr/saved')
    assert.strictEqual(authorizationOf(sent[1]), 'Bearer id-2')
  })

  it('abort an upload: rejects aborted, aborts the wx task, no progress after', async () => {
    const { server, wx, session } = setup()
    await session.login()
    let release
    server.route['/api/up'] = () => new Promise((resolve) => { release = resolve })
    const progress = []
    const p = session.uploadFile({ url: '/api/up', filePath: 'f', name: 'n', onProgressUpdate: (e) => progress.push(e) })
    await until(() => release !== undefined)
    p.task.abort()
    await assert.rejects(p, { code: 'aborted', errMsg: 'uploadFile:fail abort' })
    assert.strictEqual(wx.aborts, 1)
    release({ statusCode: 200, data: '', progress: [{ progress: 100 }] })
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepStrictEqual(progress, [])
  })

  it('network failures reject with wx\'s errMsg', async () => {
    const { server, session } = setup()
    server.route['/api/up'] = () => ({ fail: 'uploadFile:fail file not found' })
    await assert.rejects(session.uploadFile({ url: '/api/up', filePath: 'f', name: 'n' }),
      { code: 'network_error', errMsg: 'uploadFile:fail file not found' })
  })
})

describe('interceptors', () => {
  it('request: adds a header to every call, login and logout included', async () => {
    const seen = []
    const { wx, session } = setup({
      interceptors: {
        request (options, info) {
          seen.push([info.api, options.url])
          assert.strictEqual(authorizationOf(options), undefined) // never sees the session
          // In place: the caller's own header object must not change.
          options.header = options.header || {}
          options.header['X-App-Version'] = '1.2.3'
          return options
        }
      }
    })
    const mine = { 'X-Mine': '1' }
    await session.request({ url: '/api/a', header: mine })
    assert.deepStrictEqual(mine, { 'X-Mine': '1' })
    await session.uploadFile({ url: '/api/b', filePath: 'f', name: 'n' })
    await session.downloadFile({ url: '/api/c' })
    await session.logout()
    for (const r of wx.requests) assert.strictEqual(r.header['X-App-Version'], '1.2.3', r.url)
    assert.deepStrictEqual(seen, [['request', '/api/a'], ['login', BASE + '/v1/login'],
      ['uploadFile', '/api/b'], ['downloadFile', '/api/c'], ['logout', BASE + '/v1/logout']])
    // The session still decides Authorization.
    assert.strictEqual(authorizationOf(calls(wx, '/api/a')[0]), 'Bearer id-1')
  })

  it('request: runs once per call, a retry reuses its options; may be async', async () => {
    const { server, wx, session } = setup({
      interceptors: {
        request: (options, info) => Promise.resolve(Object.assign({}, options, { header: { 'X-N': String(++n) } }))
      }
    })
    let n = 0
    await session.login()
    server.live.clear()
    const res = await session.request({ url: '/api/x' })
    assert.strictEqual(res.statusCode, 200)
    const sent = calls(wx, '/api/x')
    assert.deepStrictEqual(sent.map((r) => r.header['X-N']), ['2', '2'])
  })

  it('request: a throw or a missing return rejects the call without sending', async () => {
    const thrown = setup({ interceptors: { request: () => { throw new Error('no network allowed') } } })
    await assert.rejects(thrown.session.request({ url: '/api/x' }), /no network allowed/)
    const empty = setup({ interceptors: { request: () => undefined } })
    await assert.rejects(empty.session.request({ url: '/api/x' }), { code: 'invalid_argument' })
    assert.strictEqual(thrown.wx.requests.length + empty.wx.requests.length, 0)
  })

  it('response: sees only the final result, may replace it or reject', async () => {
    const seen = []
    const { server, wx, session } = setup({
      interceptors: {
        response (result, info) {
          seen.push([info.api, info.options.url, result.statusCode])
          if (result.statusCode >= 500) throw new Error('toast: server busy')
          return Object.assign({}, result, { seen: true })
        }
      }
    })
    await session.login()
    server.live.clear()
    const res = await session.request({ url: '/api/x' })
    assert.strictEqual(res.seen, true)
    server.route['/api/down'] = () => ({ statusCode: 503, data: {} })
    await assert.rejects(session.request({ url: '/api/down' }), /toast: server busy/)
    assert.deepStrictEqual(seen, [['request', '/api/x', 200], ['request', '/api/down', 503]])
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('request: cannot send the session to a foreign origin, logout included', async () => {
    const foreign = (options) => Object.assign({}, options, { url: 'https://evil.example.net/x' })
    const { wx, session } = setup()
    await session.login()
    const hijacked = new WxSession({ baseURL: BASE, wx, interceptors: { request: foreign } })
    assert.strictEqual(hijacked.sessionId(), 'id-1')
    await assert.rejects(hijacked.request({ url: '/api/x' }), { code: 'invalid_argument' })
    await assert.rejects(hijacked.logout(), { code: 'invalid_argument' })
    assert.ok(wx.requests.every((r) => r.url.startsWith(BASE)), JSON.stringify(wx.requests))
  })

  it('must be functions', () => {
    const wx = createScriptedWx(() => ({ statusCode: 200 }))
    assert.throws(() => new WxSession({ baseURL: BASE, wx, interceptors: { request: 1 } }), TypeError)
    assert.throws(() => new WxSession({ baseURL: BASE, wx, interceptors: { response: 'x' } }), TypeError)
    assert.throws(() => new WxSession({ baseURL: BASE, wx, interceptors: 5 }), TypeError)
  })
})

describe("credential: 'jwt'", () => {
  // fakeServer plus POST /v1/token: JWTs ("jwt-N.x.y") for live sessions,
  // valid while in `server.jwts`; API routes take only a valid JWT.
  function jwtSetup (expiresIn) {
    const { server, wx, session } = setup({ credential: 'jwt' })
    server.jwts = new Map()
    server.tokenCalls = 0
    server.route['/v1/token'] = (req) => {
      const id = (authorizationOf(req) || '').replace(/^Bearer /, '')
      if (!server.live.has(id)) {
        return { statusCode: 401, data: { error: 'invalid_session', message: 'ended' } }
      }
      server.tokenCalls += 1
      const jwt = 'jwt-' + server.tokenCalls + '.e30.sig'
      server.jwts.set(jwt, id)
      return { statusCode: 200, data: { access_token: jwt, token_type: 'Bearer', expires_in: expiresIn || 600 } }
    }
    server.route['/api/x'] = (req) => {
      const jwt = (authorizationOf(req) || '').replace(/^Bearer /, '')
      if (!server.jwts.has(jwt) || !server.live.has(server.jwts.get(jwt))) {
        return {
          statusCode: 401,
          data: 'Unauthorized',
          header: { 'WWW-Authenticate': 'Bearer error="invalid_token"' }
        }
      }
      return { statusCode: 200, data: { jwt } }
    }
    return { server, wx, session }
  }

  it('sends a JWT fetched once after login, not the session id', async () => {
    const { server, wx, session } = jwtSetup()
    const first = await session.request({ url: '/api/x' })
    assert.strictEqual(first.statusCode, 200)
    assert.strictEqual(first.data.jwt, 'jwt-1.e30.sig')
    const second = await session.request({ url: '/api/x' })
    assert.strictEqual(second.data.jwt, 'jwt-1.e30.sig')
    assert.strictEqual(server.tokenCalls, 1)
    assert.strictEqual(wx.loginCalls, 1)
    // The token route itself was asked with the session id.
    assert.strictEqual(authorizationOf(calls(wx, '/v1/token')[0]), 'Bearer id-1')
    assert.strictEqual(await session.token(), 'jwt-1.e30.sig')
  })

  it('fetches a JWT right after login', async () => {
    const { server, session } = jwtSetup()
    await session.login()
    // The fetch runs in the background: wait for it, not for a while.
    await until(() => server.tokenCalls > 0)
    assert.strictEqual(server.tokenCalls, 1)
    await session.request({ url: '/api/x' })
    assert.strictEqual(server.tokenCalls, 1)
  })

  it('on a 401 fetches one new JWT for every call that hit it, and retries once', async () => {
    const { server, wx, session } = jwtSetup()
    await session.request({ url: '/api/x' })
    server.jwts.clear() // every JWT refused, the session still live
    const results = await Promise.all([1, 2, 3].map(() => session.request({ url: '/api/x' })))
    for (const res of results) assert.strictEqual(res.data.jwt, 'jwt-2.e30.sig')
    assert.strictEqual(server.tokenCalls, 2)
    assert.strictEqual(wx.loginCalls, 1)
  })

  it('logs in again when the session behind the JWT has ended', async () => {
    const { server, wx, session } = jwtSetup()
    await session.request({ url: '/api/x' })
    server.live.clear()
    const res = await session.request({ url: '/api/x' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(server.jwts.get(res.data.jwt), 'id-2')
    assert.strictEqual(wx.loginCalls, 2)
  })

  it('fetches again shortly before the JWT expires', async () => {
    const { server, session } = jwtSetup(3) // inside the 5 s margin at once
    await session.request({ url: '/api/x' })
    await session.request({ url: '/api/x' })
    assert.strictEqual(server.tokenCalls, 2)
    const shared = await Promise.all([session.token(), session.token()])
    assert.strictEqual(shared[0], shared[1])
    assert.strictEqual(server.tokenCalls, 3)
  })

  it('keeps the session id for its own calls and refuses unknown kinds', async () => {
    const { server, wx, session } = jwtSetup()
    server.route['/v1/decrypt'] = () => ({ statusCode: 200, data: { data: { ok: 1 } } })
    assert.deepStrictEqual(await session.decrypt({ encryptedData: 'a', iv: 'b' }), { ok: 1 })
    assert.strictEqual(authorizationOf(calls(wx, '/v1/decrypt')[0]), 'Bearer id-1')
    await session.logout()
    assert.strictEqual(authorizationOf(calls(wx, '/v1/logout')[0]), 'Bearer id-1')
    assert.throws(() => new WxSession({ baseURL: BASE, wx, credential: 'cookie' }), TypeError)
  })

  it('token() rejects with the server error when tokens are off', async () => {
    const { server, session } = setup()
    server.route['/v1/token'] = () => ({
      statusCode: 404, data: { error: 'not_found', message: 'no such route' }
    })
    await assert.rejects(session.token(), { code: 'not_found', statusCode: 404 })
  })
})

describe('package', () => {
  it('is packable as wxsessiond-client with no dependencies', () => {
    const dir = path.resolve(__dirname, '../../client')
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    assert.strictEqual(pkg.name, 'wxsessiond-client')
    assert.match(pkg.version, /^\d+\.\d+\.\d+$/)
    assert.strictEqual(pkg.license, 'MIT')
    assert.ok(pkg.files.includes(pkg.main))
    for (const file of pkg.files) assert.ok(fs.existsSync(path.join(dir, file)), file)
    assert.strictEqual(pkg.dependencies, undefined)
    assert.strictEqual(require(dir).WxSession, WxSession)
  })
})
