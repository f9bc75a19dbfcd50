// The client SDK on every platform's host object (issue 17): tt (Douyin),
// qq (QQ), ks (Kuaishou), swan (Baidu) behave as wx; Alipay's my logs in
// with getAuthCode({scopes: 'auth_base'}) → authCode, its request takes
// `headers` and answers `status`/`headers` (and fails on HTTP errors with
// the reply's status), and its storage takes {key} / {key, data}. Each
// fake behaves as its platform's docs describe; the platform is detected
// from the global the object is, or given as options.platform.
'use strict'

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert')

const { WxSession } = require('../../client/wxsession')
const { createScriptedWx } = require('./fake_wx')

const BASE = 'https://api.example.com'

// A server: /v1/login issues ids for codes, other routes want a live id.
function server () {
  const state = { codes: [], live: new Set(), issued: 0 }
  state.respond = (req) => {
    const path = req.url.slice(BASE.length)
    const header = req.header || {}
    if (path === '/v1/login') {
      const body = typeof req.data === 'string' ? JSON.parse(req.data) : req.data
      state.codes.push(body.code)
      state.issued += 1
      state.live.add('id-' + state.issued)
      return { statusCode: 200, data: { session_id: 'id-' + state.issued } }
    }
    const auth = (header.Authorization || '').replace(/^Bearer /, '')
    if (!state.live.has(auth)) {
      return { statusCode: 401, data: { error: 'invalid_session' }, header: { 'X-Request-Id': 'r1' } }
    }
    return { statusCode: 200, data: { ok: auth }, header: { 'X-Request-Id': 'r2' } }
  }
  return state
}

// A wx-shaped host (tt, qq, ks, swan all are): login gives `code`.
function wxLikeHost (state, prefix) {
  const host = createScriptedWx(state.respond)
  host.nextCodes.push(prefix + '-code-1', prefix + '-code-2')
  return host
}

// Alipay's my, as its docs describe it.
function fakeMy (state) {
  const storage = new Map()
  const my = {
    authCalls: [],
    requests: [],
    storageCalls: [],
    getAuthCode (call) {
      my.authCalls.push({ scopes: call.scopes })
      setImmediate(() => call.success({ authCode: 'ali-code-' + my.authCalls.length }))
    },
    request (call) {
      // my.request knows `headers`, never `header`.
      assert.strictEqual(call.header, undefined)
      my.requests.push({ url: call.url, headers: call.headers })
      const answer = state.respond({ url: call.url, data: call.data, header: call.headers || {} })
      setImmediate(() => {
        const res = { status: answer.statusCode, data: answer.data, headers: answer.header || {} }
        // HTTP errors go to fail, with the reply.
        if (answer.statusCode >= 400) {
          call.fail(Object.assign({ error: 19, errorMessage: 'http status error' }, res))
        } else {
          call.success(res)
        }
      })
      return { abort () {} }
    },
    getStorageSync (options) {
      my.storageCalls.push(['get', options])
      assert.strictEqual(typeof options, 'object')
      return { data: storage.has(options.key) ? JSON.parse(storage.get(options.key)) : null }
    },
    setStorageSync (options) {
      my.storageCalls.push(['set', options])
      storage.set(options.key, JSON.stringify(options.data))
    },
    removeStorageSync (options) {
      my.storageCalls.push(['remove', options])
      storage.delete(options.key)
    }
  }
  return my
}

const GLOBALS = { qq: 'qq', tt: 'douyin', ks: 'kuaishou', swan: 'baidu' }

afterEach(() => {
  for (const name of Object.keys(GLOBALS).concat(['my'])) delete global[name]
})

describe('wx-shaped hosts', () => {
  for (const name of Object.keys(GLOBALS)) {
    it(name + ' is detected as ' + GLOBALS[name] + ' and logs in with its code', async () => {
      const state = server()
      const host = wxLikeHost(state, name)
      global[name] = host
      const session = new WxSession({ baseURL: BASE })
      assert.strictEqual(session.platform(), GLOBALS[name])
      const res = await session.request({ url: '/api/x' })
      assert.strictEqual(res.statusCode, 200)
      assert.deepStrictEqual(state.codes, [name + '-code-1'])
      assert.strictEqual(host.loginCalls, 1)
      // Passed explicitly, the object is still recognised.
      assert.strictEqual(new WxSession({ baseURL: BASE, wx: host }).platform(), GLOBALS[name])
    })
  }

  it('a named platform wins, and an unknown one is refused', () => {
    const host = wxLikeHost(server(), 'x')
    assert.strictEqual(new WxSession({ baseURL: BASE, wx: host, platform: 'qq' }).platform(), 'qq')
    assert.strictEqual(new WxSession({ baseURL: BASE, wx: host }).platform(), 'wechat')
    assert.throws(() => new WxSession({ baseURL: BASE, wx: host, platform: 'line' }), TypeError)
  })
})

describe("Alipay's my", () => {
  it('logs in with getAuthCode(auth_base), sends headers and reads status', async () => {
    const state = server()
    const my = fakeMy(state)
    global.my = my
    const session = new WxSession({ baseURL: BASE })
    assert.strictEqual(session.platform(), 'alipay')
    const res = await session.request({ url: '/api/x', header: { 'X-A': '1' } })
    assert.strictEqual(res.statusCode, 200)
    assert.deepStrictEqual(res.data, { ok: 'id-1' })
    assert.strictEqual(res.header['X-Request-Id'], 'r2')
    assert.deepStrictEqual(my.authCalls, [{ scopes: 'auth_base' }])
    assert.deepStrictEqual(state.codes, ['ali-code-1'])
    const last = my.requests[my.requests.length - 1]
    assert.strictEqual(last.headers.Authorization, 'Bearer id-1')
    assert.strictEqual(last.headers['X-A'], '1')
  })

  it('stores the id with {key, data} and reads it back with {key}', async () => {
    const state = server()
    const my = fakeMy(state)
    const first = new WxSession({ baseURL: BASE, wx: my, platform: 'alipay' })
    await first.login()
    assert.ok(my.storageCalls.some(([op, o]) => op === 'set' && o.key === 'wxsession' &&
      o.data.sessionId === 'id-1'))
    // A restart reads the stored id and does not log in again.
    const second = new WxSession({ baseURL: BASE, wx: my })
    assert.strictEqual(second.sessionId(), 'id-1')
    await second.request({ url: '/api/x' })
    assert.strictEqual(my.authCalls.length, 1)
    // Logout removes it with {key}.
    state.respond = ((inner) => (req) => req.url.endsWith('/v1/logout')
      ? { statusCode: 204, data: '' } : inner(req))(state.respond)
    await second.logout()
    assert.ok(my.storageCalls.some(([op, o]) => op === 'remove' && o.key === 'wxsession'))
    assert.strictEqual(new WxSession({ baseURL: BASE, wx: my }).sessionId(), null)
  })

  it("a 401 that my.request reports through fail still re-logs in once", async () => {
    const state = server()
    const my = fakeMy(state)
    const session = new WxSession({ baseURL: BASE, wx: my })
    await session.login()
    state.live.clear() // the server ended the session
    const res = await session.request({ url: '/api/x' })
    assert.strictEqual(res.statusCode, 200)
    assert.strictEqual(my.authCalls.length, 2)
  })

  it('a network failure is network_error', async () => {
    const my = fakeMy(server())
    my.request = (call) => { setImmediate(() => call.fail({ error: 12, errorMessage: 'network error' })) }
    const session = new WxSession({ baseURL: BASE, wx: my })
    await assert.rejects(session.login(), (err) => err.code === 'network_error' &&
      /network error/.test(err.message))
  })
})
