/*
 * wxsessiond-client: the mini-program half of wxsessiond's login flow.
 *
 *   const { WxSession } = require('./wxsession')
 *   const session = new WxSession({ baseURL: 'https://api.example.com', wx })
 *   const res = await session.request({ url: '/api/profile' })
 *
 * The mini program holds one opaque session id (never openid or
 * session_key), kept in wx storage so it survives restarts, and sends it as
 * "Authorization: Bearer <id>" on request(), uploadFile() and downloadFile().
 * When the server says the session has ended (401 invalid_session), the
 * client runs wx.login again and retries the call once; calls that hit that
 * 401 together share one wx.login. Each call returns a promise carrying
 * `.task` (abort, progress and header events), which follows the retry.
 * `uni` (uni-app) and `Taro` work as `wx`: only callback-style calls are
 * made, which both support.
 *
 * With `credential: 'jwt'` (the server has tokens.issuer set), request(),
 * uploadFile() and downloadFile() send a short-lived signed JWT from POST
 * /v1/token instead of the session id, for backends that verify requests
 * themselves against the server's JWKS. The JWT is fetched after login,
 * again shortly before it expires or after a 401, one fetch at a time, and
 * kept in memory only; token() hands one out for the app's own use (e.g. a
 * WebSocket). The SDK's own calls to wxsessiond (decrypt, phoneNumber,
 * logout) still use the session id.
 *
 * Written in ES2015 with Promises and callbacks-style wx calls (no
 * async/await, no newer syntax; tests/client/client_syntax_test.js checks),
 * so it runs on every base library without the "enhanced compile" option,
 * and in Node for its tests. No dependencies. Types: wxsession.d.ts.
 *
 * Thread-safety: JavaScript is single-threaded; the shared state below is
 * touched only between awaits, and every login goes through one in-flight
 * promise.
 */
'use strict'

// Bearer credentials are RFC 6750 token68; anything else read back from
// storage is corrupt and must never be put into a header.
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*$/
// A generous bound on an id read from storage (the server issues 43
// characters); a longer value is corrupt, not a session.
const MAX_SESSION_ID_LENGTH = 1024
// Version of the object kept in storage, so a later format can be told apart.
const STORAGE_VERSION = 1
// A JWT from POST /v1/token is fetched again when less than this part of its
// lifetime is left, within [MIN_, MAX_TOKEN_MARGIN_MS]: a minute before the
// end of a 10-minute token, so no request carries one about to expire.
const TOKEN_MARGIN_FRACTION = 0.2
const MIN_TOKEN_MARGIN_MS = 5000
const MAX_TOKEN_MARGIN_MS = 60000
// Our JWTs are well under 1 KiB; a longer value is not one of them.
const MAX_TOKEN_LENGTH = 8192

// The wx object of the mini-program runtime, when there is one.
function globalWx () {
  return typeof wx === 'undefined' ? undefined : wx // eslint-disable-line no-undef
}

function isValidToken (token) {
  return typeof token === 'string' && token.length > 0 &&
    token.length <= MAX_TOKEN_LENGTH && TOKEN68.test(token)
}

// The platforms, as the server names them (docs/PLATFORMS.md).
const PLATFORMS = ['wechat', 'qq', 'douyin', 'kuaishou', 'baidu', 'alipay']

// Each platform's host object, where the runtime defines it: qq (QQ), tt
// (Douyin), ks (Kuaishou), swan (Baidu), my (Alipay), wx (WeChat).
/* eslint-disable no-undef */
function hostObjects () {
  return [
    ['qq', typeof qq === 'undefined' ? undefined : qq],
    ['douyin', typeof tt === 'undefined' ? undefined : tt],
    ['kuaishou', typeof ks === 'undefined' ? undefined : ks],
    ['baidu', typeof swan === 'undefined' ? undefined : swan],
    ['alipay', typeof my === 'undefined' ? undefined : my],
    ['wechat', globalWx()]
  ]
}
/* eslint-enable no-undef */

// The host object when none is passed: wx, else the first other platform's
// the runtime defines.
function defaultHost () {
  const wxApi = globalWx()
  if (wxApi) return wxApi
  const hosts = hostObjects()
  for (let i = 0; i < hosts.length; i++) {
    if (hosts[i][1]) return hosts[i][1]
  }
  return undefined
}

// Which platform `api` belongs to: the global it is (qq, tt, ks, swan, my),
// else Alipay's shape (getAuthCode, no login), else WeChat (wx, and uni or
// Taro, which absorb the differences themselves).
function detectPlatform (api) {
  const hosts = hostObjects()
  for (let i = 0; i < hosts.length; i++) {
    if (hosts[i][1] && hosts[i][1] === api) return hosts[i][0]
  }
  if (typeof api.getAuthCode === 'function' && typeof api.login !== 'function') {
    return 'alipay'
  }
  return 'wechat'
}

function isValidSessionId (id) {
  return typeof id === 'string' && id.length > 0 &&
    id.length <= MAX_SESSION_ID_LENGTH && TOKEN68.test(id)
}

// An Error with the fields callers branch on: code (the server's "error", or
// one of this module's: network_error, wx_login_failed, http_error,
// bad_response, invalid_argument), and statusCode when there was a reply.
function makeError (message, fields) {
  const err = new Error(message)
  err.name = 'WxSessionError'
  Object.keys(fields || {}).forEach(function (key) {
    if (fields[key] !== undefined) err[key] = fields[key]
  })
  return err
}

// Header names differ in case between platforms (iOS, Android, devtools).
function headerValue (header, name) {
  if (!header || typeof header !== 'object') return undefined
  const wanted = name.toLowerCase()
  const keys = Object.keys(header)
  for (let i = 0; i < keys.length; i++) {
    if (keys[i].toLowerCase() === wanted) return header[keys[i]]
  }
  return undefined
}

// wx.request parses JSON bodies itself, but a reply without a JSON content
// type (or from a proxy) arrives as a string.
function bodyObject (data) {
  if (data && typeof data === 'object') return data
  if (typeof data === 'string' && data.length > 0) {
    try {
      const parsed = JSON.parse(data)
      if (parsed && typeof parsed === 'object') return parsed
    } catch (ignored) {}
  }
  return null
}

// True when a reply means "this session id is no longer valid": wxsessiond's
// JSON error, or (behind nginx auth_request, which replaces the body with its
// own 401 page but passes WWW-Authenticate through) the Bearer challenge with
// error="invalid_token". Any other 401 is the API's own answer and is
// returned as it is.
function isInvalidSession (res) {
  if (res.statusCode !== 401) return false
  const body = bodyObject(res.data)
  if (body && body.error === 'invalid_session') return true
  const challenge = headerValue(res.header, 'WWW-Authenticate')
  return typeof challenge === 'string' && /^\s*bearer\b/i.test(challenge) &&
    /error\s*=\s*"?invalid_token"?/i.test(challenge)
}

// The Error for a reply that is not the expected success.
function errorFromResponse (res, what) {
  const body = bodyObject(res.data)
  const retry = Number(headerValue(res.header, 'Retry-After'))
  const fields = {
    statusCode: res.statusCode,
    retryAfter: Number.isFinite(retry) && retry >= 0 ? retry : undefined,
    requestId: headerValue(res.header, 'X-Request-Id')
  }
  if (body && typeof body.error === 'string') {
    fields.code = body.error
    const text = typeof body.message === 'string' && body.message
      ? body.message : body.error
    return makeError(what + ': ' + text, fields)
  }
  if (res.statusCode >= 200 && res.statusCode < 300) {
    fields.code = 'bad_response'
    return makeError(what + ': unexpected reply from the server', fields)
  }
  fields.code = 'http_error'
  return makeError(what + ': HTTP ' + res.statusCode, fields)
}

// "https://Host:1/x" -> "https://host:1"; null for a relative URL.
function originOf (url) {
  const match = /^(https?:\/\/[^/?#]+)/i.exec(url)
  return match ? match[1].toLowerCase() : null
}

// The events each kind of wx task emits, as on<Event>/off<Event> pairs.
const TASK_EVENTS = {
  request: ['HeadersReceived', 'ChunkReceived'],
  uploadFile: ['ProgressUpdate', 'HeadersReceived'],
  downloadFile: ['ProgressUpdate', 'HeadersReceived']
}

// Options the SDK owns; every other option goes to wx as given.
const OWN_OPTIONS = ['success', 'fail', 'complete', 'onProgressUpdate']

// `options` without the SDK's own keys and undefined values: what an
// interceptor sees and what is forwarded to wx.
function forwardable (options) {
  const out = {}
  Object.keys(options).forEach(function (key) {
    if (OWN_OPTIONS.indexOf(key) < 0 && options[key] !== undefined) {
      out[key] = options[key]
    }
  })
  // A copy, so an interceptor that adds a header leaves the caller's alone.
  if (out.header && typeof out.header === 'object') out.header = Object.assign({}, out.header)
  return out
}

// `call` for wx with the session as its only Authorization header.
function withSession (call, url, id) {
  const out = Object.assign({}, call)
  const header = {}
  Object.keys(call.header || {}).forEach(function (key) {
    // The session decides Authorization; a caller's copy would be stale.
    if (key.toLowerCase() !== 'authorization') header[key] = call.header[key]
  })
  if (id) header.Authorization = 'Bearer ' + id
  out.header = header
  out.url = url
  return out
}

// The task that request(), uploadFile() and downloadFile() promises carry
// as `.task`. The wx task behind it changes when a 401 makes the call log in
// and retry, so this one keeps the listeners and hands each current wx
// task's events to them; events from a replaced transfer are dropped.
class SessionTask {
  constructor (events) {
    this._aborted = false
    this._settled = false
    this._current = null
    this._onAbort = null
    this._listeners = {}
    const self = this
    events.forEach(function (name) {
      self._listeners[name] = []
      self['on' + name] = function (listener) {
        if (typeof listener === 'function') self._listeners[name].push(listener)
      }
      self['off' + name] = function (listener) {
        if (listener === undefined) {
          self._listeners[name] = []
          return
        }
        const at = self._listeners[name].indexOf(listener)
        if (at >= 0) self._listeners[name].splice(at, 1)
      }
    })
  }

  /**
   * Stops the call: the wx task in flight is aborted, no login or retry
   * follows, and the promise rejects with code 'aborted'. Does nothing once
   * the call has settled.
   */
  abort () {
    if (this._aborted || this._settled) return
    this._aborted = true
    const current = this._current
    if (current && typeof current.abort === 'function') {
      try {
        current.abort()
      } catch (ignored) {}
    }
    if (this._onAbort) this._onAbort()
  }

  // Makes `wxTask` (what wx returned, maybe nothing) the current transfer.
  _attach (wxTask) {
    this._current = wxTask || null
    if (!wxTask) return
    const self = this
    Object.keys(this._listeners).forEach(function (name) {
      let subscribe = wxTask['on' + name]
      // Taro before 3.x puts only progress(cb) and abort() on its promise.
      if (typeof subscribe !== 'function' && name === 'ProgressUpdate') {
        subscribe = wxTask.progress
      }
      if (typeof subscribe !== 'function') return
      subscribe.call(wxTask, function (event) {
        if (self._current !== wxTask || self._aborted) return
        self._listeners[name].slice().forEach(function (listener) {
          listener(event)
        })
      })
    })
  }
}

class WxSession {
  /**
   * @param {object} options
   * @param {string} options.baseURL where wxsessiond's /v1 routes are served
   *   (e.g. "https://api.example.com"); relative request URLs resolve here.
   * @param {string} [options.appid] sent with each login; leave out when the
   *   server has a single app.
   * @param {string} [options.storageKey="wxsession"] the wx storage key.
   * @param {object} [options.wx] the wx API; defaults to the global wx.
   * @param {string[]} [options.trustedOrigins] other origins (e.g.
   *   "https://api2.example.com") that may receive the session id in
   *   request(); an absolute URL elsewhere is refused.
   * @param {string} [options.credential="session"] what request(),
   *   uploadFile() and downloadFile() send as the Bearer credential:
   *   "session" (the session id) or "jwt" (a signed token from POST
   *   /v1/token; see token()).
   * @param {number} [options.timeout] ms passed to each wx.request,
   *   uploadFile and downloadFile that does not set its own.
   * @param {object} [options.interceptors]
   * @param {function} [options.interceptors.request] (options, info) →
   *   options (or a promise of them): sees and may change the options of
   *   every call before the session is attached, once per call (a retry
   *   reuses them); info.api is request, uploadFile, downloadFile, login or
   *   logout.
   * @param {function} [options.interceptors.response] (result, info) →
   *   result (or a promise of it): sees the final result of request,
   *   uploadFile and downloadFile (after any re-login), and may replace it
   *   or throw to reject the call.
   */
  constructor (options) {
    const opts = options || {}
    if (typeof opts.baseURL !== 'string' || !originOf(opts.baseURL)) {
      throw new TypeError('WxSession: baseURL must be an http(s) URL')
    }
    this._wx = opts.wx || defaultHost()
    if (opts.platform !== undefined && PLATFORMS.indexOf(opts.platform) < 0) {
      throw new TypeError('WxSession: platform must be one of ' +
        PLATFORMS.join(', '))
    }
    this._platform = this._wx
      ? opts.platform || detectPlatform(this._wx) : opts.platform
    // Alipay's my logs in with getAuthCode; every other host with login.
    const loginApi = this._platform === 'alipay' ? 'getAuthCode' : 'login'
    if (!this._wx || typeof this._wx[loginApi] !== 'function' ||
        typeof this._wx.request !== 'function') {
      throw new TypeError('WxSession: no wx API (pass options.wx)')
    }
    if (opts.appid !== undefined && typeof opts.appid !== 'string') {
      throw new TypeError('WxSession: appid must be a string')
    }
    const interceptors = opts.interceptors || {}
    if (typeof interceptors !== 'object' ||
        (interceptors.request !== undefined && typeof interceptors.request !== 'function') ||
        (interceptors.response !== undefined && typeof interceptors.response !== 'function')) {
      throw new TypeError('WxSession: interceptors.request and .response must be functions')
    }
    if (opts.credential !== undefined && opts.credential !== 'session' &&
        opts.credential !== 'jwt') {
      throw new TypeError('WxSession: credential must be "session" or "jwt"')
    }
    this._credential = opts.credential || 'session'
    // The JWT in use ({ token, expiresAt, lifetime } in ms), and the fetch
    // in flight, shared by every caller until it settles.
    this._jwt = null
    this._tokenPromise = null
    this._interceptors = interceptors
    this._baseURL = opts.baseURL.replace(/\/+$/, '')
    this._appid = opts.appid || undefined
    this._storageKey = opts.storageKey || 'wxsession'
    this._timeout = opts.timeout
    this._origins = [originOf(this._baseURL)].concat(
      (opts.trustedOrigins || []).map(originOf).filter(Boolean))
    // The login in flight, shared by every caller until it settles.
    this._loginPromise = null
    this._id = this._load()
  }

  /** The stored session id, or null. */
  sessionId () {
    return this._id
  }

  /** The platform: options.platform, or the one detected from the host. */
  platform () {
    return this._platform
  }

  /**
   * Runs wx.login, exchanges the code at POST /v1/login and stores the new
   * id. Concurrent calls share one wx.login. Resolves to the id; rejects with
   * an Error whose code is wx_login_failed, network_error, or the server's
   * error (invalid_code, login_blocked, rate_limited, upstream_unavailable..).
   */
  login () {
    if (this._loginPromise) return this._loginPromise
    const self = this
    const done = function () { self._loginPromise = null }
    this._loginPromise = this._wxLogin()
      .then(function (code) {
        const data = { code: code }
        if (self._appid) data.appid = self._appid
        return self._send('login', {
          url: self._baseURL + '/v1/login',
          method: 'POST',
          data: data,
          header: { 'Content-Type': 'application/json' }
        })
      })
      .then(function (res) {
        const body = bodyObject(res.data)
        if (res.statusCode !== 200 || !body ||
            !isValidSessionId(body.session_id)) {
          throw errorFromResponse(res, 'login')
        }
        self._store(body.session_id)
        if (self._credential === 'jwt') {
          // Fetch the first JWT now, so the next request does not wait;
          // a failure here shows up on the request that needs it.
          self._jwt = null
          Promise.resolve().then(function () {
            return self._fetchToken()
          }).then(null, function () {})
        }
        return body.session_id
      })
    this._loginPromise.then(done, done)
    return this._loginPromise
  }

  /**
   * A current JWT from POST /v1/token (the server needs tokens.issuer),
   * for the app's own use, e.g. a WebSocket's Authorization. Logs in first
   * when there is no session; fetches a new JWT when none is held or the
   * held one is close to expiry; concurrent calls share one fetch. Works
   * with either `credential`. Rejects with the server's error (not_found
   * when tokens are off), network_error or a login's error.
   */
  token () {
    const held = this._jwt
    if (held && !this._tokenStale(held)) return Promise.resolve(held.token)
    return this._fetchToken()
  }

  // True when `held` is within its refresh margin of expiring.
  _tokenStale (held) {
    const margin = Math.min(MAX_TOKEN_MARGIN_MS, Math.max(MIN_TOKEN_MARGIN_MS,
      held.lifetime * TOKEN_MARGIN_FRACTION))
    return Date.now() >= held.expiresAt - margin
  }

  // POST /v1/token with the session id, one fetch at a time. A 401 means
  // the session ended: log in again (shared with other callers) and fetch
  // once more.
  _fetchToken () {
    if (this._tokenPromise) return this._tokenPromise
    const self = this
    let usedId
    const attempt = function (id) {
      usedId = id
      return self._send('token', {
        url: self._baseURL + '/v1/token',
        method: 'POST'
      }, id)
    }
    const done = function () { self._tokenPromise = null }
    this._tokenPromise = this._currentOrLogin()
      .then(attempt)
      .then(function (res) {
        if (!isInvalidSession(res)) return res
        return self._renew(usedId).then(attempt)
      })
      .then(function (res) {
        const body = bodyObject(res.data)
        if (res.statusCode !== 200 || !body ||
            !isValidToken(body.access_token) ||
            typeof body.expires_in !== 'number' || !(body.expires_in > 0)) {
          throw errorFromResponse(res, 'token')
        }
        const lifetime = body.expires_in * 1000
        // Timed by this device's clock from the reply, not by the token's
        // exp: a phone's clock may be minutes off the server's.
        self._jwt = {
          token: body.access_token,
          expiresAt: Date.now() + lifetime,
          lifetime: lifetime
        }
        return body.access_token
      })
    this._tokenPromise.then(done, done)
    return this._tokenPromise
  }

  // The JWT to retry with after `rejected` was refused: the fetch in flight,
  // or one fetched since, or a new fetch.
  _renewToken (rejected) {
    if (this._tokenPromise) return this._tokenPromise
    if (this._jwt && this._jwt.token !== rejected &&
        !this._tokenStale(this._jwt)) {
      return Promise.resolve(this._jwt.token)
    }
    if (this._jwt && this._jwt.token === rejected) this._jwt = null
    return this._fetchToken()
  }

  /**
   * An authenticated wx.request. `url` is a path under baseURL, or an
   * absolute URL on baseURL's origin (or a trusted one). Every other
   * wx.request option (method, data, timeout, dataType, responseType,
   * enableHttp2, enableCache, ...) goes to wx.request as given; the session
   * replaces any Authorization header. Logs in first when there is no id.
   *
   * Returns a Promise of wx's result ({ statusCode, data, header, ... }) for
   * any HTTP reply: after a 401 invalid_session it logs in once and retries
   * once, and every other status is returned as it is. The promise rejects
   * when the network fails (code network_error, errMsg from wx), when a
   * needed login fails, or when `promise.task.abort()` is called (code
   * aborted; an aborted call never logs in again). success/fail/complete in
   * `options` are called once, with that final outcome.
   */
  request (options) {
    return this._transfer('request', options, this._credential)
  }

  /**
   * wx.uploadFile with the session attached, under the same rules as
   * request(): the 401 → one login → one retry rule, `.task` (abort,
   * onProgressUpdate, onHeadersReceived) that follows the retried
   * transfer, callbacks called once. `filePath` and `name` are required; an
   * `onProgressUpdate` option is the same as `task.onProgressUpdate`.
   * Resolves to wx's result ({ statusCode, data (a string), ... }).
   */
  uploadFile (options) {
    return this._transfer('uploadFile', options, this._credential)
  }

  /**
   * wx.downloadFile with the session attached, under the same rules as
   * uploadFile(); the body is a file, so any statusCode 401 counts as an
   * ended session. Resolves to wx's result ({ statusCode, tempFilePath,
   * ... }).
   */
  downloadFile (options) {
    return this._transfer('downloadFile', options, this._credential)
  }

  /**
   * POST /v1/decrypt: decrypts open data (e.g. from a button's e.detail)
   * with the user's session_key held by the server. Resolves to the
   * decrypted object; rejects with the server's error (decrypt_failed when
   * the key was rotated by a later wx.login, watermark_mismatch, ...).
   */
  decrypt (payload) {
    const p = payload || {}
    if (typeof p.encryptedData !== 'string' || typeof p.iv !== 'string') {
      return Promise.reject(makeError(
        'decrypt: encryptedData and iv are required (did the user decline?)',
        { code: 'invalid_argument' }))
    }
    return this._call('/v1/decrypt', { encryptedData: p.encryptedData, iv: p.iv },
      'decrypt').then(function (body) {
      if (!body.data || typeof body.data !== 'object') {
        throw makeError('decrypt: unexpected reply from the server',
          { code: 'bad_response', statusCode: 200 })
      }
      return body.data
    })
  }

  /**
   * POST /v1/phone with the code from a getPhoneNumber button
   * (e.detail.code). Resolves to { phoneNumber, purePhoneNumber,
   * countryCode }; rejects with invalid_argument when there is no code (the
   * user declined), or the server's error (invalid_code, rate_limited, ...).
   */
  phoneNumber (code) {
    if (typeof code !== 'string' || code.length === 0) {
      return Promise.reject(makeError(
        'phoneNumber: no code (the user may have declined)',
        { code: 'invalid_argument' }))
    }
    return this._call('/v1/phone', { code: code }, 'phoneNumber')
      .then(function (body) {
        return {
          phoneNumber: body.phoneNumber,
          purePhoneNumber: body.purePhoneNumber,
          countryCode: body.countryCode
        }
      })
  }

  /**
   * Ends the session: forgets the id at once (so this device can never send
   * it again), then POST /v1/logout. Resolves when the server confirms or
   * already considers the session ended; rejects (network_error, or the
   * server's error) when it could not confirm, in which case the session
   * lives on the server until it expires.
   */
  logout () {
    const self = this
    const settled = this._loginPromise
      ? this._loginPromise.then(function () {}, function () {})
      : Promise.resolve()
    return settled.then(function () {
      const id = self._id
      self._jwt = null
      if (!id) return undefined
      self._forget(id)
      return self._send('logout', {
        url: self._baseURL + '/v1/logout',
        method: 'POST'
      }, id).then(function (res) {
        if (res.statusCode === 204 || res.statusCode === 200 ||
            isInvalidSession(res)) {
          return undefined
        }
        throw errorFromResponse(res, 'logout')
      })
    })
  }

  // An authenticated JSON POST to wxsessiond (with the session id, whatever
  // `credential` says) whose 200 reply is an object; any other reply becomes
  // an Error.
  _call (path, data, what) {
    return this._transfer('request', {
      url: path,
      method: 'POST',
      data: data,
      header: { 'Content-Type': 'application/json' }
    }, 'session').then(function (res) {
      const body = bodyObject(res.data)
      if (res.statusCode !== 200 || !body) throw errorFromResponse(res, what)
      return body
    })
  }

  _currentOrLogin () {
    if (this._loginPromise) return this._loginPromise
    if (this._id) return Promise.resolve(this._id)
    return this.login()
  }

  // The id to retry with after `rejectedId` was refused: the login already
  // in flight, or an id a login has stored since, or a new login. This is
  // what makes a burst of 401s cost one wx.login.
  _renew (rejectedId) {
    if (this._loginPromise) return this._loginPromise
    if (this._id && this._id !== rejectedId) return Promise.resolve(this._id)
    this._forget(rejectedId)
    return this.login()
  }

  _resolve (url, api) {
    if (typeof url !== 'string' || url.length === 0) {
      throw makeError(api + ': url is required', { code: 'invalid_argument' })
    }
    const origin = originOf(url)
    if (origin === null) {
      return this._baseURL + (url.charAt(0) === '/' ? url : '/' + url)
    }
    if (this._origins.indexOf(origin) < 0) {
      // The session id is a bearer credential: never hand it to a stranger.
      throw makeError(api + ': ' + origin + ' is not baseURL\'s origin ' +
        'nor in trustedOrigins', { code: 'invalid_argument' })
    }
    return url
  }

  // wx.login as a promise of the code (Alipay: my.getAuthCode's authCode,
  // silently, with scope auth_base).
  _wxLogin () {
    const api = this._wx
    const alipay = this._platform === 'alipay'
    return new Promise(function (resolve, reject) {
      const call = alipay ? { scopes: 'auth_base' } : {}
      api[alipay ? 'getAuthCode' : 'login'](Object.assign(call, {
        success: function (res) {
          const code = res && (alipay ? res.authCode : res.code)
          if (typeof code === 'string' && code) {
            resolve(code)
          } else {
            reject(makeError('wx.login gave no code', {
              code: 'wx_login_failed', errMsg: res && res.errMsg
            }))
          }
        },
        fail: function (res) {
          const errMsg = (res && res.errMsg) || 'login:fail'
          reject(makeError('wx.login failed: ' + errMsg,
            { code: 'wx_login_failed', errMsg: errMsg }))
        }
      }))
    })
  }

  // The SDK's own wx.request (login, logout) after the request interceptor,
  // with `id` as the session when given: a promise of { statusCode, data,
  // header, ... }; rejects only when no HTTP reply arrived.
  _send (api, call, id) {
    const self = this
    if (this._timeout !== undefined) call.timeout = this._timeout
    return this._intercept(api, call).then(function (intercepted) {
      // An interceptor may change the URL, but not send the id elsewhere.
      const url = self._resolve(intercepted.url, api)
      return self._wxCall('request', withSession(intercepted, url, id))
    })
  }

  // interceptors.request over `call` (a fresh object the interceptor may
  // change); the call's options unchanged when there is none.
  _intercept (api, call) {
    const interceptor = this._interceptors.request
    if (!interceptor) return Promise.resolve(call)
    return Promise.resolve(interceptor(call, { api: api })).then(function (out) {
      if (!out || typeof out !== 'object') {
        throw makeError(api + ': interceptors.request must return the options',
          { code: 'invalid_argument' })
      }
      return out
    })
  }

  // The body of request(), uploadFile() and downloadFile(): a promise of the
  // final result, carrying `.task`, with the callbacks in `options` called
  // once with the outcome. `credential` is "session" or "jwt".
  _transfer (api, options, credential) {
    const jwt = credential === 'jwt'
    const opts = options || {}
    const self = this
    const task = new SessionTask(TASK_EVENTS[api])
    if (typeof opts.onProgressUpdate === 'function' && task.onProgressUpdate) {
      task.onProgressUpdate(opts.onProgressUpdate)
    }
    const aborted = makeError(api + ': aborted',
      { code: 'aborted', errMsg: api + ':fail abort' })
    // Each step checks this, so an aborted call sends nothing more and
    // never logs in again.
    const check = function (value) {
      if (task._aborted) throw aborted
      return value
    }
    const promise = new Promise(function (resolve, reject) {
      task._onAbort = function () { reject(aborted) }
      let call
      let url
      let sentWith
      const send = function (id) {
        check()
        sentWith = id
        return self._wxCall(api, withSession(call, url, id), task)
      }
      self._intercept(api, forwardable(opts))
        .then(function (intercepted) {
          check()
          call = intercepted
          url = self._resolve(call.url, api)
          if (api === 'uploadFile' &&
              (typeof call.filePath !== 'string' || call.filePath.length === 0 ||
               typeof call.name !== 'string' || call.name.length === 0)) {
            throw makeError('uploadFile: filePath and name are required',
              { code: 'invalid_argument' })
          }
          if (typeof self._wx[api] !== 'function') {
            throw makeError(api + ': the wx object has no ' + api,
              { code: 'invalid_argument' })
          }
          if (api === 'request' && !call.method) call.method = 'GET'
          if (call.timeout === undefined && self._timeout !== undefined) {
            call.timeout = self._timeout
          }
          return jwt ? self.token() : self._currentOrLogin()
        })
        .then(send)
        .then(function (res) {
          check()
          const ended = api === 'downloadFile'
            ? res.statusCode === 401 : isInvalidSession(res)
          if (!ended) return res
          // A refused JWT: expired, or its session ended. A new fetch tells
          // which, and logs in again when needed.
          return (jwt ? self._renewToken(sentWith) : self._renew(sentWith))
            .then(send)
        })
        .then(function (res) {
          check()
          const interceptor = self._interceptors.response
          return interceptor ? interceptor(res, { api: api, options: call }) : res
        })
        .then(resolve, reject)
    })
    const settled = function () { task._settled = true }
    promise.then(settled, settled)
    promise.task = task
    const success = opts.success
    const fail = opts.fail
    const complete = opts.complete
    if (typeof success === 'function' || typeof fail === 'function' ||
        typeof complete === 'function') {
      promise.then(function (res) {
        if (typeof success === 'function') success(res)
        if (typeof complete === 'function') complete(res)
      }, function (err) {
        if (typeof fail === 'function') fail(err)
        if (typeof complete === 'function') complete(err)
      })
    }
    return promise
  }

  // wx[api](call) as a promise of wx's result (a request's with header
  // always an object); rejects with network_error only when no HTTP reply
  // arrived. What wx returns becomes `task`'s current transfer.
  _wxCall (api, call, task) {
    const wxApi = this._wx
    const alipay = this._platform === 'alipay'
    return new Promise(function (resolve, reject) {
      const success = function (res) {
        const result = Object.assign({}, alipay ? fromAlipay(res) : res)
        if (api === 'request') result.header = result.header || {}
        resolve(result)
      }
      const full = Object.assign({}, alipay ? toAlipay(api, call) : call, {
        success: success,
        fail: function (res) {
          // my.request fails on HTTP errors too, with the reply's status.
          if (alipay && res && typeof res.status === 'number') {
            success(res)
            return
          }
          const errMsg = (res && (res.errMsg || res.errorMessage)) || api + ':fail'
          reject(makeError(errMsg, { code: 'network_error', errMsg: errMsg }))
        }
      })
      const returned = wxApi[api](full)
      // Taro (and uni-app without callbacks) return a promise that also
      // rejects on failure; the fail callback above already has it.
      if (returned && typeof returned.then === 'function') {
        returned.then(null, function () {})
      }
      if (task) task._attach(returned)
    })
  }

  // The id in storage, or null; anything unreadable is removed so it is
  // never sent.
  _load () {
    let value
    try {
      if (this._platform === 'alipay') {
        // my.getStorageSync({ key }) answers { data }, data null if unset.
        const stored = this._wx.getStorageSync({ key: this._storageKey })
        value = stored && stored.data !== null ? stored.data : undefined
      } else {
        value = this._wx.getStorageSync(this._storageKey)
      }
    } catch (ignored) {
      return null
    }
    if (value === '' || value === undefined) return null // nothing stored
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value)
      } catch (ignored) {
        value = null
      }
    }
    if (value && typeof value === 'object' && value.v === STORAGE_VERSION &&
        isValidSessionId(value.sessionId)) {
      return value.sessionId
    }
    this._removeStored()
    return null
  }

  _store (id) {
    this._id = id
    try {
      this._setStored({ v: STORAGE_VERSION, sessionId: id })
    } catch (ignored) {
      // Storage full or unavailable: the id still works for this run, and
      // the next launch logs in again.
    }
  }

  // Drops `id` if it is still the current one (a newer id stays).
  _forget (id) {
    if (this._id !== id) return
    this._id = null
    this._removeStored()
  }

  _removeStored () {
    try {
      if (typeof this._wx.removeStorageSync === 'function') {
        this._wx.removeStorageSync(this._platform === 'alipay'
          ? { key: this._storageKey } : this._storageKey)
      } else {
        this._setStored('')
      }
    } catch (ignored) {}
  }

  // Alipay's my.setStorageSync takes { key, data }.
  _setStored (value) {
    if (this._platform === 'alipay') {
      this._wx.setStorageSync({ key: this._storageKey, data: value })
    } else {
      this._wx.setStorageSync(this._storageKey, value)
    }
  }
}

// A wx-style call as Alipay's my takes it: `headers` for `header`, and
// uploadFile's `fileName` for `name`.
function toAlipay (api, call) {
  const out = Object.assign({}, call)
  if (out.header !== undefined) {
    out.headers = out.header
    delete out.header
  }
  if (api === 'uploadFile' && out.name !== undefined && out.fileName === undefined) {
    out.fileName = out.name
  }
  return out
}

// A result of Alipay's my as wx gives it: statusCode and header (my.request
// answers status and headers), tempFilePath (my.downloadFile: apFilePath).
function fromAlipay (res) {
  const out = Object.assign({}, res)
  if (out.statusCode === undefined && typeof out.status === 'number') {
    out.statusCode = out.status
  }
  if (out.header === undefined && out.headers !== undefined) out.header = out.headers
  if (out.tempFilePath === undefined && out.apFilePath !== undefined) {
    out.tempFilePath = out.apFilePath
  }
  return out
}

module.exports = { WxSession: WxSession }
