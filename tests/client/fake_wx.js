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

// A wx whose request answers from `respond(request)`, a function returning
// (or promising, so a test can hold a reply back) { statusCode, data,
// header } or { fail: errMsg }. No network.
function createScriptedWx (respond, options = {}) {
  const wx = baseWx(options)
  wx.request = (call) => {
    const logged = { method: call.method || 'GET', url: call.url, header: call.header || {}, data: call.data }
    if (call.timeout !== undefined) logged.timeout = call.timeout
    wx.requests.push(logged)
    setImmediate(() => {
      Promise.resolve(respond(logged)).then((answer) => {
        if (answer.fail) call.fail({ errMsg: answer.fail })
        else call.success(Object.assign({ header: {}, errMsg: 'request:ok' }, answer))
      })
    })
  }
  return wx
}

module.exports = { createHttpWx, createScriptedWx, authorizationOf }
