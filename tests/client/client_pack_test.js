// `npm pack` in client/ gives a package that installs into a fresh
// directory (offline: it has no dependencies), holds only the SDK, its
// declarations and README, loads with require(), and type-checks a strict
// TypeScript consumer that imports it by name.
'use strict'

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { CLIENT, devTool, typeCheck } = require('./dev_tools')

// Runs npm with `args` in `cwd`; resolves to stdout.
function npm (args, cwd) {
  return new Promise((resolve, reject) => {
    execFile('npm', args.concat(['--no-audit', '--no-fund', '--no-update-notifier']),
      { cwd, env: Object.assign({}, process.env, { npm_config_loglevel: 'error' }) },
      (error, stdout, stderr) => {
        if (error) reject(new Error('npm ' + args.join(' ') + ' failed: ' + stderr))
        else resolve(stdout)
      })
  })
}

describe('npm pack', () => {
  let dir
  let app
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxs-pack-'))
    const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', dir], CLIENT))
    const tarball = path.join(dir, packed[0].filename)
    app = path.join(dir, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'),
      JSON.stringify({ name: 'pack-consumer', version: '1.0.0', private: true }))
    await npm(['install', '--offline', '--ignore-scripts', tarball], app)
  })
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }) })

  it('installs only the SDK, its declarations and README', () => {
    const installed = path.join(app, 'node_modules', 'wxsessiond-client')
    assert.deepStrictEqual(fs.readdirSync(installed).sort(),
      ['README.md', 'package.json', 'wxsession.d.ts', 'wxsession.js'])
    assert.deepStrictEqual(fs.readdirSync(path.join(app, 'node_modules')).filter((n) => !n.startsWith('.')),
      ['wxsessiond-client'])
    assert.strictEqual(fs.readFileSync(path.join(installed, 'wxsession.js'), 'utf8'),
      fs.readFileSync(path.join(CLIENT, 'wxsession.js'), 'utf8'))
  })

  it('loads with require()', () => {
    const { WxSession } = require(require.resolve('wxsessiond-client', { paths: [app] }))
    assert.strictEqual(typeof WxSession, 'function')
    const fake = { login () {}, request () {}, getStorageSync () { return '' }, setStorageSync () {} }
    assert.strictEqual(new WxSession({ baseURL: 'https://api.example.com', wx: fake }).sessionId(), null)
  })

  it('type-checks a strict consumer that imports it by name', () => {
    const ts = devTool('typescript')
    const consumer = path.join(app, 'consumer.ts')
    fs.copyFileSync(path.join(__dirname, 'types', 'consumer.ts'), consumer)
    for (const extra of [{}, { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 },
      { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler }]) {
      assert.deepStrictEqual(typeCheck([consumer], extra), [], JSON.stringify(extra))
    }
    // And without the declarations it would not (TS7016): the check is real.
    fs.rmSync(path.join(app, 'node_modules', 'wxsessiond-client', 'wxsession.d.ts'))
    const errors = typeCheck([consumer])
    assert.ok(errors.some((e) => /TS7016/.test(e)), errors.join('\n'))
  })
})
