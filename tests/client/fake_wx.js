// Fake `wx` objects for the client SDK tests: the parts of the mini-program
// API the SDK uses (login, request, storage), with counters to assert on.
// Written for Node 18 (Debian 12): no APIs newer than that.
'use strict'

const http = require('node:http')

// Codes must be unique within one mock-wechat process (it answers a reused
// code with 40163, as WeChat does), also across test files run in parallel.
let codeCounter = 0
function uniqueSuffix () {
  codeCounter += 1
  return process.pid + '-' + codeCounter
}

// wx storage serializes values; a copy keeps the fake as strict.
function copy (value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value))
}

// Storage and login shared by both fakes. `storage` is a Map so a test can
// hand the same one to a second WxSession (an app "restart").
function baseWx (options) {
  const wx = {
    storage: options.storage || new Map(),
    user: options.user || 'alice',
    loginCalls: 0,
    // Codes to hand out before the generated ones (e.g. 'blocked').
    nextCodes: [],
    // When set, wx.login fails with this errMsg.
    loginFailure: null,
    requests: [],
    login (call) {
      wx.loginCalls += 1
      const failure = wx.loginFailure
      const code = wx.nextCodes.length > 0
        ? wx.nextCodes.shift()
        : wx.user + '.' + uniqueSuffix()
      setImmediate(() => {
        if (failure) call.fail({ errMsg: failure })
        else call.success({ code, errMsg: 'login:ok' })
      })
    },
    getStorageSync (key) {
      // Like wx: a missing key reads as the empty string.
      return wx.storage.has(key) ? copy(wx.storage.get(key)) : ''
    },
    setStorageSync (key, value) {
      wx.storage.set(key, copy(value))
    },
    removeStorageSync (key) {
      wx.storage.delete(key)
    }
  }
  return wx
}

// The Authorization header of a logged request, whatever its case.
function authorizationOf (request) {
  const header = request.header || {}
  for (const key of Object.keys(header)) {
    if (key.toLowerCase() === 'authorization') return header[key]
  }
  return undefined
}

// wx.request body rules: GET data becomes the query string; an object body
// is sent as JSON.
function encodeRequest (call) {
  const method = (call.method || 'GET').toUpperCase()
  let url = call.url
  let body = null
  const header = Object.assign({}, call.header || {})
  if (call.data !== undefined && call.data !== null) {
    if (method === 'GET') {
      const query = Object.keys(call.data)
        .map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(call.data[k]))
        .join('&')
      if (query) url += (url.includes('?') ? '&' : '?') + query
    } else if (typeof call.data === 'string') {
      body = call.data
    } else {
      body = JSON.stringify(call.data)
      if (!Object.keys(header).some((k) => k.toLowerCase() === 'content-type')) {
        header['Content-Type'] = 'application/json'
      }
    }
  }
  return { method, url, body, header }
}

// A wx whose request does real HTTP with node's http module, keeping the
// server's header case as wx does on devices.
function createHttpWx (options = {}) {
  const wx = baseWx(options)
  wx.request = (call) => {
    const { method, url, body, header } = encodeRequest(call)
    wx.requests.push({ method, url, header })
    // A fresh connection per request (agent: false), so no idle socket
    // outlives a test.
    const req = http.request(url, { method, headers: header, agent: false }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let data = text
        if (text.length > 0) {
          try { data = JSON.parse(text) } catch (ignored) {}
        }
        const headers = {}
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          headers[res.rawHeaders[i]] = res.rawHeaders[i + 1]
        }
        call.success({ statusCode: res.statusCode, data, header: headers, errMsg: 'request:ok' })
      })
      res.on('error', (err) => call.fail({ errMsg: 'request:fail ' + err.message }))
    })
    if (call.timeout) req.setTimeout(call.timeout, () => req.destroy(new Error('timeout')))
    req.on('error', (err) => call.fail({ errMsg: 'request:fail ' + err.message }))
    if (body !== null) req.write(body)
    req.end()
  }
  return wx
}

// A scripted wx task: the listener pairs of wx's RequestTask, UploadTask
// and DownloadTask, and abort.
function scriptedTask () {
  const listeners = { ProgressUpdate: [], HeadersReceived: [], ChunkReceived: [] }
  const task = { aborted: false, listeners, emit (name, event) { listeners[name].slice().forEach((l) => l(event)) } }
  for (const name of Object.keys(listeners)) {
    task['on' + name] = (listener) => { listeners[name].push(listener) }
    task['off' + name] = (listener) => {
      const at = listeners[name].indexOf(listener)
      if (at >= 0) listeners[name].splice(at, 1)
    }
  }
  return task
}

// One scripted call of wx[api](call): logs it in wx.requests (the options
// as wx got them, less the callbacks, plus `api`), asks `respond` and
// answers through the callbacks, as wx does: success or fail, then
// complete. An answer may hold `progress` (events for onProgressUpdate)
// and `headers` (for onHeadersReceived), sent before it. abort() before
// the answer fails the call with "<api>:fail abort" and drops the answer.
// Returns the task.
function scriptedCall (wx, respond, api, call) {
  const logged = { api }
  for (const key of Object.keys(call)) {
    if (!['success', 'fail', 'complete'].includes(key)) logged[key] = call[key]
  }
  if (api === 'request') logged.method = call.method || 'GET'
  logged.header = call.header || {}
  wx.requests.push(logged)
  const task = scriptedTask()
  let done = false
  const finish = (ok, res) => {
    if (done) return
    done = true
    if (ok && call.success) call.success(res)
    if (!ok && call.fail) call.fail(res)
    if (call.complete) call.complete(res)
  }
  task.abort = () => {
    task.aborted = true
    wx.aborts += 1
    finish(false, { errMsg: api + ':fail abort' })
  }
  setImmediate(() => {
    Promise.resolve(respond(logged)).then((answer) => {
      if (done) return
      if (answer.headers) task.emit('HeadersReceived', { header: answer.headers })
      for (const event of answer.progress || []) task.emit('ProgressUpdate', event)
      if (answer.fail) {
        finish(false, { errMsg: answer.fail })
        return
      }
      const res = Object.assign({ errMsg: api + ':ok' }, answer)
      delete res.progress
      delete res.headers
      if (api === 'request' && !res.header) res.header = {}
      finish(true, res)
    })
  })
  return task
}

const TASK_APIS = ['request', 'uploadFile', 'downloadFile']

// A wx whose request, uploadFile and downloadFile answer from
// `respond(call)`, a function returning (or promising, so a test can hold
// a reply back) { statusCode, data, header } or { fail: errMsg }. No
// network. Each returns its task, as wx does.
function createScriptedWx (respond, options = {}) {
  const wx = baseWx(options)
  wx.aborts = 0
  for (const api of TASK_APIS) wx[api] = (call) => scriptedCall(wx, respond, api, call)
  return wx
}

const hasCallback = (call) => ['success', 'fail', 'complete'].some((k) => typeof call[k] === 'function')

// uni-app's `uni` (Vue 3): the same API as wx, but a call given none of
// success/fail/complete returns a promise of the result (rejecting with
// the fail result) instead of a task. `promiseCalls` counts those.
function createScriptedUni (respond, options = {}) {
  const uni = createScriptedWx(respond, options)
  uni.promiseCalls = 0
  for (const api of ['login'].concat(TASK_APIS)) {
    const withCallbacks = uni[api]
    uni[api] = (call = {}) => {
      if (hasCallback(call)) return withCallbacks(call)
      uni.promiseCalls += 1
      return new Promise((resolve, reject) => {
        withCallbacks(Object.assign({}, call, { success: resolve, fail: reject }))
      })
    }
  }
  return uni
}

// Taro's `Taro`: every call returns a promise, whether given callbacks or
// not, and it rejects on failure (also when a fail callback got it). For
// request, uploadFile and downloadFile the promise also carries the task's
// methods (abort, onProgressUpdate, ...).
function createScriptedTaro (respond, options = {}) {
  const taro = createScriptedWx(respond, options)
  for (const api of ['login'].concat(TASK_APIS)) {
    const withCallbacks = taro[api]
    taro[api] = (call = {}) => {
      let task
      const promise = new Promise((resolve, reject) => {
        task = withCallbacks(Object.assign({}, call, {
          success (res) { if (call.success) call.success(res); resolve(res) },
          fail (res) { if (call.fail) call.fail(res); reject(res) },
          complete (res) { if (call.complete) call.complete(res) }
        }))
      })
      if (task) {
        for (const key of Object.keys(task)) {
          if (typeof task[key] === 'function') promise[key] = task[key]
        }
      }
      return promise
    }
  }
  return taro
}

module.exports = { createHttpWx, createScriptedWx, createScriptedUni, createScriptedTaro, authorizationOf }
