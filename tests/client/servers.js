// Runs the real wxsessiond (WXSESSIOND_BIN) and `wxsessiond mock-wechat` on
// free loopback ports for the client SDK's end-to-end tests. Node 18 APIs.
'use strict'

const { spawn, execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const BIN = process.env.WXSESSIOND_BIN || path.resolve(__dirname, '../../build/wxsessiond')
const APPID = 'wxclienttest000001'
// How long a child may take to print its listening line, in ms: generous
// for a loaded two-core CI machine.
const START_TIMEOUT_MS = 15000
// How long a stopped child may take to exit before SIGKILL, in ms.
const STOP_TIMEOUT_MS = 5000

// Every child still running; killed if the test process exits early.
const children = new Set()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

// Spawns `args` and resolves to { child, url } once stdout says
// "listening on http://HOST:PORT".
function startChild (args) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    child.on('exit', () => children.delete(child))
    let out = ''
    let err = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(args[0] + ' did not start; stderr: ' + err))
    }, START_TIMEOUT_MS)
    child.stderr.on('data', (chunk) => { err += chunk })
    child.stdout.on('data', (chunk) => {
      out += chunk
      const match = /listening on (http:\/\/\S+)/.exec(out)
      if (match) {
        clearTimeout(timer)
        resolve({ child, url: match[1] })
      }
    })
    child.on('error', (e) => { clearTimeout(timer); reject(e) })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(args[0] + ' exited with ' + code + '; stderr: ' + err))
    })
  })
}

function stopChild (child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    child.on('exit', () => { clearTimeout(timer); resolve() })
    child.kill('SIGTERM')
  })
}

function run (args) {
  return new Promise((resolve, reject) => {
    execFile(BIN, args, (error, stdout, stderr) => {
      if (error) reject(new Error(args.join(' ') + ' failed: ' + stderr))
      else resolve(stdout)
    })
  })
}

// mock-wechat plus `wxsessiond serve` with a config in a temp dir.
// stop() ends both and removes the dir; restartServer() stops the server
// and starts it again on the same port with the same database.
// `extraConfig` (optional) adds top-level config keys, e.g. { tokens: {...} }.
async function startServers (extraConfig) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxs-client-'))
  const mock = await startChild(['mock-wechat', '--listen', '127.0.0.1:0'])
  const secretFile = path.join(dir, 'secret')
  fs.writeFileSync(secretFile, 'client-test-secret\n', { mode: 0o600 })
  const configPath = path.join(dir, 'config.json')
  fs.writeFileSync(configPath, JSON.stringify({
    listen: '127.0.0.1:0',
    database: path.join(dir, 'sessions.db'),
    apps: [{ appid: APPID, secret_file: secretFile }],
    wechat: { api_base: mock.url, timeout: 2 },
    ...(extraConfig || {})
  }, null, 2))
  let server
  try {
    server = await startChild(['serve', '--config', configPath, '--listen', '127.0.0.1:0'])
  } catch (e) {
    await stopChild(mock.child)
    throw e
  }
  const env = {
    appid: APPID,
    dir,
    configPath,
    mockURL: mock.url,
    baseURL: server.url,
    async revokeAll () {
      return JSON.parse(await run(['revoke', '--config', configPath, '--all'])).revoked
    },
    async stopServer () {
      await stopChild(server.child)
    },
    async startServerAgain () {
      const hostPort = env.baseURL.replace('http://', '')
      server = await startChild(['serve', '--config', configPath, '--listen', hostPort])
    },
    async stop () {
      await stopChild(server.child)
      await stopChild(mock.child)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  return env
}

module.exports = { startServers, APPID }
