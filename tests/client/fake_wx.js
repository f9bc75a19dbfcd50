// Fake `wx` objects for the client SDK tests: the parts of the mini-program
// API the SDK uses (login, request, storage), with counters to assert on.
// Written for Node 18 (Debian 12): no APIs newer than that.
'use strict'

const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

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
    const task = httpTask()
    let done = false
    const finish = (ok, res) => {
      if (done) return
      done = true
      if (ok) call.success(res)
      else call.fail(res)
    }
    // A fresh connection per request (agent: false), so no idle socket
    // outlives a test.
    const req = http.request(url, { method, headers: header, agent: false }, (res) => {
      task.emit('HeadersReceived', { header: rawHeaders(res) })
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let data = text
        if (text.length > 0) {
          try { data = JSON.parse(text) } catch (ignored) {}
        }
        finish(true, { statusCode: res.statusCode, data, header: rawHeaders(res), errMsg: 'request:ok' })
      })
      res.on('error', (err) => finish(false, { errMsg: 'request:fail ' + err.message }))
    })
    task.abort = () => {
      req.destroy()
      finish(false, { errMsg: 'request:fail abort' })
    }
    if (call.timeout) req.setTimeout(call.timeout, () => req.destroy(new Error('timeout')))
    req.on('error', (err) => finish(false, { errMsg: 'request:fail ' + err.message }))
    if (body !== null) req.write(body)
    req.end()
    return task
  }
  // Files: real multipart uploads, and downloads into wx.tmpDir (made on
  // the first download; a test removes it with wx.cleanup()).
  wx.uploads = []
  wx.downloads = []
  wx.tmpDir = null
  wx.cleanup = () => { if (wx.tmpDir) fs.rmSync(wx.tmpDir, { recursive: true, force: true }) }
  wx.uploadFile = (call) => httpUploadFile(wx, call)
  wx.downloadFile = (call) => httpDownloadFile(wx, call)
  return wx
}

// The response headers as wx hands them over: the server's case.
function rawHeaders (res) {
  const headers = {}
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    headers[res.rawHeaders[i]] = res.rawHeaders[i + 1]
  }
  return headers
}

// A task for the HTTP fakes: listener lists, emit, and abort (set later).
function httpTask () {
  const task = scriptedTask()
  task.abort = () => {}
  return task
}

// How many bytes the HTTP fakes write (or read) between progress events.
const TRANSFER_CHUNK = 16 * 1024

// wx.uploadFile for the HTTP fake: a multipart/form-data POST of
// call.formData and the file at call.filePath (under call.name), written in
// chunks with an onProgressUpdate event after each. Logged in wx.uploads.
function httpUploadFile (wx, call) {
  const task = httpTask()
  const logged = { url: call.url, header: call.header || {}, name: call.name, filePath: call.filePath, formData: call.formData }
  wx.uploads.push(logged)
  let done = false
  const finish = (ok, res) => {
    if (done) return
    done = true
    if (ok) call.success(res)
    else call.fail(res)
  }
  let file
  try {
    file = fs.readFileSync(call.filePath)
  } catch (err) {
    setImmediate(() => finish(false, { errMsg: 'uploadFile:fail file not found' }))
    return task
  }
  const boundary = '----wxfake' + crypto.randomBytes(8).toString('hex')
  const parts = []
  for (const [key, value] of Object.entries(call.formData || {})) {
    parts.push(Buffer.from('--' + boundary + '\r\nContent-Disposition: form-data; name="' + key +
      '"\r\n\r\n' + value + '\r\n'))
  }
  parts.push(Buffer.from('--' + boundary + '\r\nContent-Disposition: form-data; name="' + call.name +
    '"; filename="' + path.basename(call.filePath) + '"\r\nContent-Type: application/octet-stream\r\n\r\n'))
  parts.push(file)
  parts.push(Buffer.from('\r\n--' + boundary + '--\r\n'))
  const body = Buffer.concat(parts)
  const header = Object.assign({}, call.header || {}, {
    'Content-Type': 'multipart/form-data; boundary=' + boundary,
    'Content-Length': String(body.length)
  })
  const req = http.request(call.url, { method: 'POST', headers: header, agent: false }, (res) => {
    task.emit('HeadersReceived', { header: rawHeaders(res) })
    const chunks = []
    res.on('data', (chunk) => chunks.push(chunk))
    res.on('end', () => finish(true, {
      statusCode: res.statusCode,
      data: Buffer.concat(chunks).toString('utf8'),
      header: rawHeaders(res),
      errMsg: 'uploadFile:ok'
    }))
    res.on('error', (err) => finish(false, { errMsg: 'uploadFile:fail ' + err.message }))
  })
  task.abort = () => {
    req.destroy()
    finish(false, { errMsg: 'uploadFile:fail abort' })
  }
  if (call.timeout) req.setTimeout(call.timeout, () => req.destroy(new Error('timeout')))
  req.on('error', (err) => finish(false, { errMsg: 'uploadFile:fail ' + err.message }))
  let sent = 0
  const writeNext = () => {
    if (done || sent >= body.length) {
      req.end()
      return
    }
    const chunk = body.subarray(sent, sent + TRANSFER_CHUNK)
    req.write(chunk, () => {
      sent += chunk.length
      if (done) return
      task.emit('ProgressUpdate', {
        progress: Math.floor(sent * 100 / body.length),
        totalBytesSent: sent,
        totalBytesExpectedToSend: body.length
      })
      writeNext()
    })
  }
  writeNext()
  return task
}

// wx.downloadFile for the HTTP fake: a GET whose body is saved to
// call.filePath or a fresh file in wx.tmpDir, with onProgressUpdate events
// as it arrives. Logged in wx.downloads.
function httpDownloadFile (wx, call) {
  const task = httpTask()
  wx.downloads.push({ url: call.url, header: call.header || {}, filePath: call.filePath })
  let done = false
  const finish = (ok, res) => {
    if (done) return
    done = true
    if (ok) call.success(res)
    else call.fail(res)
  }
  const req = http.request(call.url, { method: 'GET', headers: call.header || {}, agent: false }, (res) => {
    task.emit('HeadersReceived', { header: rawHeaders(res) })
    const expected = Number(res.headers['content-length']) || 0
    const chunks = []
    let written = 0
    res.on('data', (chunk) => {
      chunks.push(chunk)
      written += chunk.length
      task.emit('ProgressUpdate', {
        progress: expected ? Math.floor(written * 100 / expected) : 0,
        totalBytesWritten: written,
        totalBytesExpectedToWrite: expected
      })
    })
    res.on('end', () => {
      if (done) return
      if (!call.filePath && !wx.tmpDir) wx.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxs-fake-wx-'))
      const target = call.filePath ||
        path.join(wx.tmpDir, 'tmp_' + crypto.randomBytes(6).toString('hex'))
      fs.writeFileSync(target, Buffer.concat(chunks))
      const result = { statusCode: res.statusCode, header: rawHeaders(res), errMsg: 'downloadFile:ok' }
      if (call.filePath) result.filePath = target
      else result.tempFilePath = target
      finish(true, result)
    })
    res.on('error', (err) => finish(false, { errMsg: 'downloadFile:fail ' + err.message }))
  })
  task.abort = () => {
    req.destroy()
    finish(false, { errMsg: 'downloadFile:fail abort' })
  }
  if (call.timeout) req.setTimeout(call.timeout, () => req.destroy(new Error('timeout')))
  req.on('error', (err) => finish(false, { errMsg: 'downloadFile:fail ' + err.message }))
  req.end()
  return task
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
// methods (abort, onProgressUpdate, ...); with options.legacy (Taro before
// 3.x) an upload's or download's promise has only progress(cb) and abort().
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
      if (task && options.legacy) {
        if (api === 'uploadFile' || api === 'downloadFile') {
          promise.progress = (cb) => { task.onProgressUpdate(cb); return promise }
          promise.abort = () => { task.abort(); return promise }
        }
      } else if (task) {
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
