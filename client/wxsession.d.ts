/**
 * Type declarations for wxsessiond-client (wxsession.js): the mini-program
 * half of wxsessiond's login flow. Written by hand to match wxsession.js;
 * tests/client/types/ compiles consumers against it under `--strict`.
 *
 * ```ts
 * import { WxSession } from 'wxsessiond-client'
 * const session = new WxSession({ baseURL: 'https://api.example.com' })
 * const res = await session.request<{ nickname: string }>({ url: '/api/profile' })
 * ```
 */

/** HTTP methods of wx.request (`PATCH` only on uni-app and Taro). */
export type RequestMethod =
  | 'OPTIONS' | 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'TRACE' | 'CONNECT' | 'PATCH'

/** A request body, as wx.request takes it. */
export type RequestData = string | ArrayBuffer | Record<string, any>

/** Header names to values. */
export type Header = Record<string, string>

/** The codes this client gives its own errors. */
export type WxSessionClientErrorCode =
  /** No HTTP reply (wx's `fail`): `errMsg` has wx's message. */
  | 'network_error'
  /** wx.login failed or gave no code: `errMsg` has wx's message. */
  | 'wx_login_failed'
  /** An error reply that is not wxsessiond's JSON (e.g. a proxy's page). */
  | 'http_error'
  /** A success reply without the expected fields. */
  | 'bad_response'
  /** Bad arguments (no url, a foreign origin, no filePath...); nothing was sent. */
  | 'invalid_argument'
  /** `task.abort()` was called. */
  | 'aborted'

/** The codes wxsessiond answers with (its `error` field; docs/API.md). */
export type WxSessionServerErrorCode =
  | 'invalid_request' | 'payload_too_large' | 'unknown_app' | 'invalid_session'
  | 'unauthorized' | 'invalid_code' | 'login_blocked' | 'rate_limited'
  | 'upstream_unavailable' | 'upstream_error' | 'store_unavailable'
  | 'decrypt_failed' | 'watermark_mismatch' | 'watermark_expired' | 'not_found'
  | 'internal'

/**
 * Every code a WxSessionError may carry. Other strings are possible when a
 * later server adds codes; compare against the names above.
 */
export type WxSessionErrorCode =
  | WxSessionClientErrorCode | WxSessionServerErrorCode | (string & {})

/**
 * What the client's promises reject with (an `Error`; there is no class to
 * test with `instanceof`: check `name === 'WxSessionError'` or `code`).
 * The one exception: an error your own interceptor throws reaches you as
 * it was thrown.
 */
export interface WxSessionError extends Error {
  name: 'WxSessionError'
  /** What went wrong, to branch on. */
  code: WxSessionErrorCode
  /** The HTTP status, when there was a reply. */
  statusCode?: number
  /** Seconds from `Retry-After` (429, 503). */
  retryAfter?: number
  /** `X-Request-Id` of the reply, to find the server's log line. */
  requestId?: string
  /**
   * wx's message for network_error and wx_login_failed (`"request:fail
   * timeout"`); `"<api>:fail abort"` for aborted.
   */
  errMsg?: string
}

/** success/fail/complete, called once with the call's final outcome. */
export interface Callbacks<R> {
  /** The final result, after any re-login and retry. */
  success?: (result: R) => void
  /** The error the promise rejects with. */
  fail?: (error: WxSessionError) => void
  /** After success or fail, with the same argument. */
  complete?: (outcome: R | WxSessionError) => void
}

/**
 * request()'s options: wx.request's. `url` is a path under baseURL or an
 * absolute URL on baseURL's origin or a trusted one. Everything but `url`,
 * the Authorization header and the callbacks goes to wx.request as given.
 */
export interface RequestOptions<T = any> extends Callbacks<RequestResult<T>> {
  url: string
  /** Default `GET`. */
  method?: RequestMethod
  data?: RequestData
  /** Sent as given, but Authorization is always the session's. */
  header?: Header
  /** Milliseconds; default the constructor's `timeout`, else wx's. */
  timeout?: number
  /** `json` (default: parse the body) or anything else (leave it text). */
  dataType?: string
  responseType?: 'text' | 'arraybuffer'
  enableHttp2?: boolean
  enableQuic?: boolean
  enableCache?: boolean
  enableHttpDNS?: boolean
  httpDNSServiceId?: string
  /** Stream the body: see SessionRequestTask.onChunkReceived. */
  enableChunked?: boolean
  forceCellularNetwork?: boolean
  useHighPerformanceMode?: boolean
  redirect?: 'follow' | 'manual'
  /** uni-app: verify the TLS certificate (App only). */
  sslVerify?: boolean
  /** uni-app: send cookies cross-origin (H5 only). */
  withCredentials?: boolean
  /** uni-app: prefer IPv4 in DNS (App only). */
  firstIpv4?: boolean
}

/** wx.request's result, for any HTTP status. */
export interface RequestResult<T = any> {
  statusCode: number
  /** Parsed JSON (dataType json), else text or an ArrayBuffer. */
  data: T
  /** The reply's headers, names in the server's case. */
  header: Header
  cookies?: string[]
  errMsg?: string
  /** wx's timing details, when the base library gives them. */
  profile?: Record<string, unknown>
}

/** uploadFile()'s options: wx.uploadFile's. */
export interface UploadFileOptions extends Callbacks<UploadFileResult> {
  url: string
  /** The local file (e.g. a tempFilePath from wx.chooseMedia). */
  filePath: string
  /** The multipart field name the server reads the file from. */
  name: string
  header?: Header
  /** Other multipart fields. */
  formData?: Record<string, any>
  timeout?: number
  /** The same as `promise.task.onProgressUpdate(listener)`. */
  onProgressUpdate?: (event: UploadProgress) => void
}

/** wx.uploadFile's result. */
export interface UploadFileResult {
  statusCode: number
  /** The reply body as text (parse JSON yourself). */
  data: string
  header?: Header
  errMsg?: string
}

/** downloadFile()'s options: wx.downloadFile's. */
export interface DownloadFileOptions extends Callbacks<DownloadFileResult> {
  url: string
  header?: Header
  timeout?: number
  /** Where to save the file (a user path); default a temporary file. */
  filePath?: string
  /** The same as `promise.task.onProgressUpdate(listener)`. */
  onProgressUpdate?: (event: DownloadProgress) => void
}

/** wx.downloadFile's result. */
export interface DownloadFileResult {
  statusCode: number
  /** The temporary file, when no filePath was given. */
  tempFilePath: string
  /** The saved file, when filePath was given. */
  filePath?: string
  header?: Header
  dataLength?: number
  errMsg?: string
  profile?: Record<string, unknown>
}

export interface UploadProgress {
  /** Percent, 0 to 100. */
  progress: number
  totalBytesSent: number
  totalBytesExpectedToSend: number
}

export interface DownloadProgress {
  /** Percent, 0 to 100. */
  progress: number
  totalBytesWritten: number
  totalBytesExpectedToWrite: number
}

export interface HeadersReceivedEvent {
  header: Header
}

export interface ChunkReceivedEvent {
  data: ArrayBuffer
}

/**
 * The task behind a call. It follows a retry: listeners registered before
 * a 401 and its re-login receive the retried transfer's events; events of
 * a replaced or aborted transfer are dropped.
 */
export interface SessionTask {
  /**
   * Stops the call wherever it is: the promise rejects with code
   * 'aborted', and no login or retry follows. No effect once settled.
   */
  abort(): void
  onHeadersReceived(listener: (event: HeadersReceivedEvent) => void): void
  /** Removes `listener`, or every listener when none is given. */
  offHeadersReceived(listener?: (event: HeadersReceivedEvent) => void): void
}

/** request()'s task. */
export interface SessionRequestTask extends SessionTask {
  /** Body chunks, with `enableChunked: true`. */
  onChunkReceived(listener: (event: ChunkReceivedEvent) => void): void
  offChunkReceived(listener?: (event: ChunkReceivedEvent) => void): void
}

/** uploadFile()'s task. */
export interface SessionUploadTask extends SessionTask {
  onProgressUpdate(listener: (event: UploadProgress) => void): void
  offProgressUpdate(listener?: (event: UploadProgress) => void): void
}

/** downloadFile()'s task. */
export interface SessionDownloadTask extends SessionTask {
  onProgressUpdate(listener: (event: DownloadProgress) => void): void
  offProgressUpdate(listener?: (event: DownloadProgress) => void): void
}

/** A promise of a call's result that also carries its task. */
export type SessionPromise<R, T extends SessionTask> = Promise<R> & {
  readonly task: T
}

/** The calls an interceptor sees. */
export type InterceptedApi = 'request' | 'uploadFile' | 'downloadFile' | 'login' | 'logout' | 'token'

/**
 * The options an interceptor sees: those of the call without the session
 * (no Authorization) and without callbacks. login's, logout's and token's
 * are the client's own (absolute url, method POST).
 */
export interface OutgoingOptions {
  url: string
  header?: Header
  [option: string]: unknown
}

/** Any result an interceptor sees. */
export type AnyResult = RequestResult | UploadFileResult | DownloadFileResult

export interface WxSessionInterceptors {
  /**
   * Called once for every call (request, uploadFile, downloadFile, and the
   * client's own login and logout) before the session is attached; a retry
   * reuses what it returned. Return the options (changed or not), or a
   * promise of them; throw or reject to fail the call unsent.
   */
  request?(options: OutgoingOptions, info: { api: InterceptedApi }): OutgoingOptions | PromiseLike<OutgoingOptions>
  /**
   * Called with the final result of request, uploadFile and downloadFile
   * (after any re-login; decrypt and phoneNumber included), not for login
   * or logout. Return the result (changed or not) or a promise of it;
   * throw or reject to make the call reject.
   */
  response?(
    result: AnyResult,
    info: { api: 'request' | 'uploadFile' | 'downloadFile', options: OutgoingOptions }
  ): AnyResult | PromiseLike<AnyResult>
}

/**
 * The parts of the platform API the client uses: `wx`, uni-app's `uni` and
 * Taro's `Taro` all fit. Parameters are loose on purpose, so each
 * platform's own typings are accepted.
 */
export interface WxApi {
  login(options: any): unknown
  request(options: any): unknown
  /** Needed for uploadFile(). */
  uploadFile?(options: any): unknown
  /** Needed for downloadFile(). */
  downloadFile?(options: any): unknown
  getStorageSync(key: string): any
  setStorageSync(key: string, value: any): unknown
  removeStorageSync?(key: string): unknown
}

/** The platforms, as the server names them (docs/PLATFORMS.md). */
export type WxPlatform = 'wechat' | 'qq' | 'douyin' | 'kuaishou' | 'baidu' | 'alipay'

/**
 * Alipay's `my`: logs in with getAuthCode (authCode), request takes
 * `headers` and answers `status`/`headers`, storage takes `{ key }` and
 * `{ key, data }`. The client absorbs these differences.
 */
export interface AlipayApi {
  getAuthCode(options: any): unknown
  request(options: any): unknown
  uploadFile?(options: any): unknown
  downloadFile?(options: any): unknown
  getStorageSync(options: { key: string }): any
  setStorageSync(options: { key: string, data: any }): unknown
  removeStorageSync?(options: { key: string }): unknown
}

export interface WxSessionOptions {
  /** Where wxsessiond's /v1 routes are served, e.g. "https://api.example.com". */
  baseURL: string
  /** Sent with each login; leave out when the server has a single app. */
  appid?: string
  /** The storage key of the session id. Default "wxsession". */
  storageKey?: string
  /**
   * The platform API: `wx` (the default, the global one), `qq`, `tt`, `ks`,
   * `swan`, Alipay's `my`, `uni` or `Taro`.
   */
  wx?: WxApi | AlipayApi
  /**
   * The platform, as the server names it; default: detected from `wx`
   * (the global tt, qq, ks, swan or my it is), else "wechat".
   */
  platform?: WxPlatform
  /** Other origins ("https://files.example.com") that may receive the session. */
  trustedOrigins?: string[]
  /** Milliseconds, for every call that sets no timeout of its own. */
  timeout?: number
  interceptors?: WxSessionInterceptors
  /**
   * What request(), uploadFile() and downloadFile() send as the Bearer
   * credential: "session" (the default: the session id) or "jwt" (a
   * short-lived signed token from POST /v1/token, for backends that verify
   * it against the server's JWKS; the server needs tokens.issuer).
   */
  credential?: WxSessionCredential
}

/** The Bearer credential of request(), uploadFile() and downloadFile(). */
export type WxSessionCredential = 'session' | 'jwt'

/** The answer of phoneNumber(). */
export interface PhoneNumber {
  /** With the country code for non-Chinese numbers ("+1 2025550123"). */
  phoneNumber: string
  purePhoneNumber: string
  countryCode: string
}

/** Open data to decrypt, as a button's `e.detail` holds it. */
export interface EncryptedPayload {
  encryptedData?: string
  iv?: string
}

/**
 * One user's session: wx.login, an opaque session id in storage, and
 * authenticated calls that log in again (once, shared by every call) when
 * the server says the session has ended. Create one per app.
 */
export declare class WxSession {
  /** @throws TypeError when baseURL is not http(s), there is no wx, or an option has the wrong type. */
  constructor(options: WxSessionOptions)

  /** The stored session id, or null. */
  sessionId(): string | null

  /** options.platform, or the platform detected from the host object. */
  platform(): WxPlatform

  /**
   * A current JWT from POST /v1/token, for the app's own use (e.g. a
   * WebSocket's Authorization). Logs in first when needed, fetches a new
   * one shortly before the held one expires, and shares one fetch between
   * concurrent calls. Rejects with not_found when the server has tokens
   * off, network_error, or a login's error.
   */
  token(): Promise<string>

  /**
   * wx.login, then POST /v1/login; stores the new id. Concurrent calls
   * share one wx.login. Resolves to the id; rejects with wx_login_failed,
   * network_error or the server's code (invalid_code, login_blocked,
   * rate_limited, upstream_unavailable, ...).
   */
  login(): Promise<string>

  /**
   * wx.request with the session. Resolves for every HTTP reply (a 401
   * invalid_session first makes it log in and retry once); rejects with
   * network_error, invalid_argument, aborted, or a login's error.
   */
  request<T = any>(options: RequestOptions<T>): SessionPromise<RequestResult<T>, SessionRequestTask>

  /** wx.uploadFile with the session, under request()'s rules. */
  uploadFile(options: UploadFileOptions): SessionPromise<UploadFileResult, SessionUploadTask>

  /** wx.downloadFile with the session; any 401 counts as an ended session. */
  downloadFile(options: DownloadFileOptions): SessionPromise<DownloadFileResult, SessionDownloadTask>

  /**
   * POST /v1/decrypt. Resolves to the decrypted object; rejects with
   * invalid_argument (no encryptedData or iv: the user declined),
   * decrypt_failed, watermark_mismatch, watermark_expired, ...
   */
  decrypt<T = Record<string, unknown>>(payload: EncryptedPayload): Promise<T>

  /**
   * POST /v1/phone with a getPhoneNumber button's e.detail.code. Rejects
   * with invalid_argument when there is no code (the user declined),
   * invalid_code, watermark_mismatch, ...
   */
  phoneNumber(code: string | undefined): Promise<PhoneNumber>

  /**
   * Forgets the id at once, then POST /v1/logout. Rejects (network_error,
   * or the server's code) when the server could not confirm.
   */
  logout(): Promise<void>
}
