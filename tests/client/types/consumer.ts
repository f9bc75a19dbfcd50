// A TypeScript app using every public member of wxsessiond-client, checked
// with `strict` by client_types_test.js (against client/wxsession.d.ts, and
// against the npm-packed package installed into a fresh directory). Each
// `@ts-expect-error` line must be refused, or the check fails.
import {
  AlipayApi,
  WxPlatform,
  AnyResult as AnyResultAlias,
  Callbacks,
  ChunkReceivedEvent,
  EncryptedPayload,
  Header,
  HeadersReceivedEvent,
  InterceptedApi,
  RequestData,
  RequestMethod,
  SessionTask,
  WxSessionClientErrorCode,
  WxSessionInterceptors,
  WxSessionServerErrorCode,
  UploadFileOptions,
  DownloadFileOptions,
  WxSession,
  WxApi,
  WxSessionError,
  WxSessionErrorCode,
  WxSessionOptions,
  WxSessionCredential,
  RequestOptions,
  RequestResult,
  UploadFileResult,
  DownloadFileResult,
  UploadProgress,
  DownloadProgress,
  SessionPromise,
  SessionRequestTask,
  SessionUploadTask,
  SessionDownloadTask,
  OutgoingOptions,
  AnyResult,
  PhoneNumber
} from 'wxsessiond-client'

declare const platform: WxApi
declare function showToast (title: string): void

const options: WxSessionOptions = {
  baseURL: 'https://api.example.com',
  appid: 'wx1234567890abcdef',
  storageKey: 'wxsession',
  wx: platform,
  trustedOrigins: ['https://files.example.com'],
  timeout: 10000,
  credential: 'jwt',
  interceptors: {
    request (call: OutgoingOptions, info) {
      const api: 'request' | 'uploadFile' | 'downloadFile' | 'login' | 'logout' | 'token' = info.api
      void api
      call.header = Object.assign({}, call.header, { 'X-App-Version': '1.4.0' })
      return call
    },
    async response (result: AnyResult, info) {
      if (result.statusCode >= 500) showToast('server busy: ' + info.api + ' ' + info.options.url)
      return result
    }
  }
}
const session = new WxSession(options)

interface Profile { nickname: string }

async function main (): Promise<void> {
  const id: string | null = session.sessionId()
  const platformName: WxPlatform = session.platform()
  void platformName
  const fresh: string = await session.login()
  const jwt: string = await session.token()
  void id
  void fresh
  void jwt

  const opts: RequestOptions<Profile> = {
    url: '/api/profile',
    method: 'POST',
    data: { a: 1 },
    header: { 'X-Trace': 't' },
    timeout: 5000,
    dataType: 'json',
    responseType: 'text',
    enableHttp2: true,
    enableQuic: false,
    enableCache: true,
    enableHttpDNS: false,
    httpDNSServiceId: 'svc',
    enableChunked: false,
    forceCellularNetwork: false,
    useHighPerformanceMode: false,
    redirect: 'follow',
    sslVerify: true,
    withCredentials: false,
    firstIpv4: false,
    success: (res: RequestResult<Profile>) => { const name: string = res.data.nickname; void name },
    fail: (err: WxSessionError) => { const code: WxSessionErrorCode = err.code; void code },
    complete: (outcome: RequestResult<Profile> | WxSessionError) => { void outcome }
  }
  const p: SessionPromise<RequestResult<Profile>, SessionRequestTask> = session.request<Profile>(opts)
  p.task.onHeadersReceived((e) => { const h: Record<string, string> = e.header; void h })
  p.task.offHeadersReceived()
  p.task.onChunkReceived((e) => { const b: ArrayBuffer = e.data; void b })
  p.task.offChunkReceived()
  const res = await p
  const status: number = res.statusCode
  const name: string = res.data.nickname
  const header: Record<string, string> = res.header
  const cookies: string[] | undefined = res.cookies
  void [status, name, header, cookies]
  p.task.abort()

  const onUpload = (e: UploadProgress): void => {
    const n: number = e.progress + e.totalBytesSent + e.totalBytesExpectedToSend
    void n
  }
  const up = session.uploadFile({
    url: '/api/avatar',
    filePath: 'wxfile://tmp/a.png',
    name: 'file',
    header: { 'X-A': '1' },
    formData: { kind: 'avatar' },
    timeout: 60000,
    onProgressUpdate: onUpload,
    success: (r: UploadFileResult) => { const text: string = r.data; void text },
    fail: (e: WxSessionError) => { void e.errMsg },
    complete: () => {}
  })
  const upTask: SessionUploadTask = up.task
  upTask.onProgressUpdate(onUpload)
  upTask.offProgressUpdate(onUpload)
  upTask.onHeadersReceived(() => {})
  const uploaded: UploadFileResult = await up
  void uploaded.statusCode

  const down = session.downloadFile({
    url: '/api/file',
    header: {},
    timeout: 1000,
    filePath: 'wxfile://usr/saved',
    onProgressUpdate: (e: DownloadProgress) => { void (e.totalBytesWritten + e.totalBytesExpectedToWrite) }
  })
  const downTask: SessionDownloadTask = down.task
  downTask.abort()
  const downloaded: DownloadFileResult = await down
  const path: string = downloaded.tempFilePath
  void path

  const plain = await session.decrypt<{ nickName: string }>({ encryptedData: 'ZW5j', iv: 'aXY=' })
  const nick: string = plain.nickName
  void nick
  const detail: { encryptedData?: string, iv?: string, errMsg: string } = { errMsg: 'ok' }
  await session.decrypt(detail)
  const phone: PhoneNumber = await session.phoneNumber(undefined)
  const digits: string = phone.purePhoneNumber + phone.countryCode + phone.phoneNumber
  void digits
  await session.logout()

  try {
    await session.request({ url: '/x' })
  } catch (e) {
    const err = e as WxSessionError
    if (err.name === 'WxSessionError' && err.code === 'aborted') return
    const retry: number | undefined = err.retryAfter
    const rid: string | undefined = err.requestId
    const st: number | undefined = err.statusCode
    void [retry, rid, st]
  }

  // Refused: each of these is a mistake the declarations must catch.
  // @ts-expect-error url is required
  session.request({ method: 'GET' })
  // @ts-expect-error not a method wx.request knows
  session.request({ url: '/x', method: 'FETCH' })
  // @ts-expect-error uploadFile needs name
  session.uploadFile({ url: '/x', filePath: 'f' })
  // @ts-expect-error a request task has no progress
  p.task.onProgressUpdate(() => {})
  // @ts-expect-error upload progress events have no totalBytesWritten
  upTask.onProgressUpdate((e) => e.totalBytesWritten)
  // @ts-expect-error credential is "session" or "jwt"
  new WxSession({ baseURL: 'https://a.example.com', credential: 'token' }) // eslint-disable-line no-new
  // @ts-expect-error baseURL is required
  new WxSession({ wx: platform }) // eslint-disable-line no-new
  // @ts-expect-error sessionId may be null
  const never: string = session.sessionId()
  void never
  // @ts-expect-error an upload's data is text
  const obj: { a: number } = uploaded.data
  void obj
}

// The smaller types, each used once as an app would.
const method: RequestMethod = 'PUT'
const body: RequestData = new ArrayBuffer(8)
const header: Header = { 'X-A': '1' }
const mine: WxSessionClientErrorCode = 'aborted'
const theirs: WxSessionServerErrorCode = 'invalid_session'
const api: InterceptedApi = 'logout'
const credential: WxSessionCredential = 'session'
const payload: EncryptedPayload = { encryptedData: 'a', iv: 'b' }
const callbacks: Callbacks<AnyResultAlias> = { complete: (outcome) => { void outcome } }
const interceptors: WxSessionInterceptors = { response: (result) => result }
function follow (task: SessionTask): void {
  const onHeaders = (e: HeadersReceivedEvent): void => { void e.header }
  task.onHeadersReceived(onHeaders)
  task.offHeadersReceived(onHeaders)
  task.abort()
}
function chunks (task: SessionRequestTask): void {
  task.onChunkReceived((e: ChunkReceivedEvent) => { void e.data.byteLength })
}
function downloads (task: SessionDownloadTask): void {
  const listener = (e: DownloadProgress): void => { void e.progress }
  task.onProgressUpdate(listener)
  task.offProgressUpdate(listener)
  task.offProgressUpdate()
}
const avatar: UploadFileOptions = { url: '/api/avatar', filePath: 'f', name: 'file' }
const saved: DownloadFileOptions = { url: '/api/file', filePath: 'wxfile://usr/x' }
// Other platforms: a named platform, and Alipay's my as the host object.
declare const my: AlipayApi
const onAlipay = new WxSession({ baseURL: 'https://api.example.com', wx: my, platform: 'alipay' })
const where: WxPlatform = onAlipay.platform()
// @ts-expect-error not a platform the server knows
new WxSession({ baseURL: 'https://api.example.com', platform: 'line' }) // eslint-disable-line no-new
void [method, body, header, mine, theirs, api, credential, payload, callbacks, interceptors, follow, chunks, downloads,
  avatar, saved, where]

void main
