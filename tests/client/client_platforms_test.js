// The client SDK with uni-app's `uni` and Taro's `Taro` passed as `wx`:
// fakes of each that behave as they do (callbacks, or a promise when given
// none; Taro's promise rejects on failure even with callbacks) run the same
// flows as wx: login, re-login after a 401, uploads with progress, downloads,
// abort, and failures that must not leak unhandled rejections.
'use strict'

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert')

const { WxSession } = require('../../client/wxsession')
const { createScriptedUni, createScriptedTaro, authorizationOf } = require('./fake_wx')

const BASE = 'https://api.example.com'

// Unhandled rejections seen while this file runs: a Taro promise the SDK
// forgot would land here.
const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)
before(() => process.on('unhandledRejection', onUnhandled))
after(() => process.off('unhandledRejection', onUnhandled))

// wxsessiond and an API behind it: live ids only, and `route` overrides.
function host () {
  const state = { issued: 0, live: new Set(), route: {} }
  state.respond = (req) => {
    const pathname = req.url.slice(BASE.length)
    if (state.route[pathname]) return state.route[pathname](req)
    if (pathname === '/v1/login') {
      state.issued += 1
      state.live.add('id-' + state.issued)
      return { statusCode: 200, data: { session_id: 'id-' + state.issued } }
    }
    const auth = authorizationOf(req) || ''
    if (!state.live.has(auth.replace(/^Bearer /, ''))) {
      const body = { error: 'invalid_session' }
      return req.api === 'uploadFile'
        ? { statusCode: 401, data: JSON.stringify(body) }
        : { statusCode: 401, data: body }
    }
    if (req.api === 'uploadFile') {
      return {
        statusCode: 200,
        data: JSON.stringify({ name: req.name, auth }),
        progress: [{ progress: 100, totalBytesSent: 4, totalBytesExpectedToSend: 4 }]
      }
    }
    if (req.api === 'downloadFile') return { statusCode: 200, tempFilePath: 'tmp://' + pathname }
    return { statusCode: 200, data: { auth } }
  }
  return state
}

const flavours = {
  uni: createScriptedUni,
  Taro: createScriptedTaro,
  'Taro 2 (progress() and abort() only)': (respond) => createScriptedTaro(respond, { legacy: true })
}

describe('the fakes behave like the real objects', () => {
  it('uni: a task with callbacks, a promise without', async () => {
    const uni = createScriptedUni(() => ({ statusCode: 200, data: 'x' }))
    let got
    const task = uni.request({ url: BASE + '/a', success: (res) => { got = res } })
    assert.strictEqual(typeof task.abort, 'function')
    assert.strictEqual(typeof task.then, 'undefined')
    const res = await uni.request({ url: BASE + '/b' })
    assert.strictEqual(res.data, 'x')
    assert.strictEqual(got.data, 'x')
    assert.strictEqual((await uni.login()).errMsg, 'login:ok')
    const failing = createScriptedUni(() => ({ fail: 'request:fail' }))
    await assert.rejects(failing.request({ url: BASE + '/c' }), { errMsg: 'request:fail' })
  })

  it('Taro: a promise with the task\'s methods, callbacks or not', async () => {
    const taro = createScriptedTaro(() => ({ fail: 'request:fail timeout' }))
    let failed
    const p = taro.request({ url: BASE + '/a', fail: (res) => { failed = res } })
    assert.strictEqual(typeof p.then, 'function')
    assert.strictEqual(typeof p.abort, 'function')
    await assert.rejects(p, { errMsg: 'request:fail timeout' })
    assert.strictEqual(failed.errMsg, 'request:fail timeout')
  })
})

for (const [name, create] of Object.entries(flavours)) {
  describe('WxSession with ' + name, () => {
    const setup = () => {
      const state = host()
      const api = create(state.respond)
      const session = new WxSession({ baseURL: BASE, wx: api })
      return { state, api, session }
    }

    it('logs in, stores the id and sends it', async () => {
      const { api, session } = setup()
      const res = await session.request({ url: '/api/me' })
      assert.strictEqual(res.statusCode, 200)
      assert.strictEqual(res.data.auth, 'Bearer id-1')
      assert.deepStrictEqual(api.storage.get('wxsession'), { v: 1, sessionId: 'id-1' })
      assert.strictEqual(api.loginCalls, 1)
      // A restart reads the id back through the same storage API.
      assert.strictEqual(new WxSession({ baseURL: BASE, wx: api }).sessionId(), 'id-1')
    })

    it('logs in once again after a revoked session, for requests and uploads alike', async () => {
      const { state, api, session } = setup()
      await session.login()
      state.live.clear()
      const progress = []
      const [res, up, down] = await Promise.all([
        session.request({ url: '/api/me' }),
        session.uploadFile({ url: '/api/up', filePath: 'tmp://a', name: 'file', onProgressUpdate: (e) => progress.push(e.progress) }),
        session.downloadFile({ url: '/api/file' })
      ])
      assert.strictEqual(res.data.auth, 'Bearer id-2')
      assert.deepStrictEqual(JSON.parse(up.data), { name: 'file', auth: 'Bearer id-2' })
      assert.strictEqual(down.tempFilePath, 'tmp:///api/file')
      assert.deepStrictEqual(progress, [100])
      assert.strictEqual(api.loginCalls, 2)
    })

    it('aborts through the platform\'s task', async () => {
      const { state, api, session } = setup()
      await session.login()
      let release
      state.route['/api/slow'] = () => new Promise((resolve) => { release = resolve })
      const p = session.uploadFile({ url: '/api/slow', filePath: 'tmp://a', name: 'file' })
      while (!release) await new Promise((resolve) => setImmediate(resolve))
      p.task.abort()
      await assert.rejects(p, { code: 'aborted' })
      assert.strictEqual(api.aborts, 1)
      release({ statusCode: 200, data: '' })
    })

    it('reports failures through the promise and callbacks, leaking no rejection', async () => {
      const { state, session } = setup()
      await session.login()
      state.route['/api/down'] = () => ({ fail: 'request:fail timeout' })
      await assert.rejects(session.request({ url: '/api/down' }), { code: 'network_error', errMsg: 'request:fail timeout' })
      const failed = await new Promise((resolve) => {
        session.request({ url: '/api/down', fail: resolve })
      })
      assert.strictEqual(failed.code, 'network_error')
      state.route['/v1/login'] = () => ({ fail: 'request:fail' })
      state.live.clear()
      await assert.rejects(session.request({ url: '/api/me' }), { code: 'network_error' })
      // Let any stray rejection surface before the check below.
      await new Promise((resolve) => setTimeout(resolve, 0))
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepStrictEqual(unhandled, [])
    })

    it('always passes callbacks, never the promise style', async () => {
      const { api, session } = setup()
      await session.request({ url: '/api/me' })
      if (api.promiseCalls !== undefined) assert.strictEqual(api.promiseCalls, 0)
    })
  })
}
