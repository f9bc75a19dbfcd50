// A small app backend for the client SDK's end-to-end tests, on a free
// loopback port beside the real wxsessiond: it takes multipart uploads and
// serves downloads, and checks each caller's session by asking wxsessiond's
// GET /v1/auth with the Authorization header it got, as a backend behind
// nginx auth_request would. A refused session is answered with wxsessiond's
// own 401 (status, body and WWW-Authenticate). Node 18 APIs.
'use strict'

const crypto = require('node:crypto')
const http = require('node:http')

// GET /v1/auth at `baseURL` with `authorization`; resolves to { statusCode,
// header, body } (204 and the X-WX-* identity for a live session).
function askWxsessiond (baseURL, authorization) {
  return new Promise((resolve, reject) => {
    const headers = authorization ? { Authorization: authorization } : {}
    const req = http.get(baseURL + '/v1/auth', { headers, agent: false }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ statusCode: res.statusCode, header: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
  })
}

// The parts of a multipart/form-data body: [{ name, filename, data }].
function parseMultipart (body, contentType) {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType || '')
  if (!match) throw new Error('no multipart boundary')
  const delimiter = Buffer.from('--' + (match[1] || match[2]))
  const parts = []
  let at = body.indexOf(delimiter)
  while (at >= 0) {
    const start = at + delimiter.length
    if (body.subarray(start, start + 2).toString() === '--') break
    const next = body.indexOf(delimiter, start)
    if (next < 0) throw new Error('unterminated multipart body')
    // Each part: CRLF, headers, CRLF CRLF, data, CRLF before the next delimiter.
    const part = body.subarray(start + 2, next - 2)
    const split = part.indexOf('\r\n\r\n')
    const head = part.subarray(0, split).toString('utf8')
    const disposition = /content-disposition:[^\r\n]*/i.exec(head)[0]
    const name = /name="([^"]*)"/.exec(disposition)[1]
    const filename = /filename="([^"]*)"/.exec(disposition)
    parts.push({ name, filename: filename ? filename[1] : undefined, data: part.subarray(split + 4) })
    at = next
  }
  return parts
}

function sendJson (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

// Starts the backend; resolves to { url, uploads, files, onUploadBody,
// stop() }. `uploads` logs every POST /api/upload ({ authorization, status
// }); `files` maps a stored name to its bytes, served at
// GET /api/files/<name>. `onUploadBody(req)`, when a test sets it, is
// awaited once the first chunk of an upload's body has arrived, before the
// rest is read and the session checked: the place to end the session
// mid-upload.
function startBackend (wxsessiondURL) {
  const backend = { uploads: [], files: new Map(), onUploadBody: null }
  const server = http.createServer((req, res) => {
    const authorization = req.headers.authorization
    const refuse = (auth) => {
      const header = { 'Content-Type': auth.header['content-type'] || 'application/json' }
      if (auth.header['www-authenticate']) header['WWW-Authenticate'] = auth.header['www-authenticate']
      res.writeHead(auth.statusCode, header)
      res.end(auth.body)
    }
    if (req.method === 'POST' && req.url === '/api/upload') {
      const entry = { authorization, status: null }
      backend.uploads.push(entry)
      const chunks = []
      let hooked = false
      req.on('data', (chunk) => {
        chunks.push(chunk)
        if (!hooked && backend.onUploadBody) {
          hooked = true
          req.pause()
          Promise.resolve(backend.onUploadBody(req)).then(() => req.resume(), (err) => {
            entry.status = 500
            sendJson(res, 500, { error: String(err) })
          })
        }
      })
      req.on('end', async () => {
        if (entry.status !== null) return
        const auth = await askWxsessiond(wxsessiondURL, authorization)
        entry.status = auth.statusCode === 204 ? 200 : auth.statusCode
        if (auth.statusCode !== 204) {
          refuse(auth)
          return
        }
        const parts = parseMultipart(Buffer.concat(chunks), req.headers['content-type'])
        const file = parts.find((p) => p.filename !== undefined)
        const fields = {}
        for (const p of parts) if (p.filename === undefined) fields[p.name] = p.data.toString('utf8')
        const stored = crypto.randomBytes(6).toString('hex')
        backend.files.set(stored, { data: file.data, openid: auth.header['x-wx-openid'] })
        sendJson(res, 200, {
          openid: auth.header['x-wx-openid'],
          field: file.name,
          filename: file.filename,
          size: file.data.length,
          sha256: crypto.createHash('sha256').update(file.data).digest('hex'),
          fields,
          stored
        })
      })
      return
    }
    const download = /^\/api\/files\/([0-9a-f]+)$/.exec(req.url)
    if (req.method === 'GET' && download) {
      askWxsessiond(wxsessiondURL, authorization).then((auth) => {
        if (auth.statusCode !== 204) return refuse(auth)
        const file = backend.files.get(download[1])
        if (!file || file.openid !== auth.header['x-wx-openid']) return sendJson(res, 404, { error: 'not_found' })
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': file.data.length })
        res.end(file.data)
      }, (err) => sendJson(res, 502, { error: String(err) }))
      return
    }
    sendJson(res, 404, { error: 'not_found' })
  })
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      backend.url = 'http://127.0.0.1:' + server.address().port
      backend.stop = () => new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      resolve(backend)
    })
  })
}

module.exports = { startBackend, parseMultipart }
