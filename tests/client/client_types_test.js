// client/wxsession.d.ts under TypeScript's `strict`: a consumer using every
// public member compiles (and its @ts-expect-error lines are refused), the
// real mini-program `wx` typings are accepted, and a misspelt option name
// does not compile. The same check against the npm-packed package is in
// client_pack_test.js.
'use strict'

const { describe, it } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const path = require('node:path')

const { CLIENT, MODULES, devTool, typeCheck } = require('./dev_tools')

const TYPES = path.join(__dirname, 'types')
// Resolves 'wxsessiond-client' to the declarations in client/.
const inRepo = { paths: { 'wxsessiond-client': [path.join(CLIENT, 'wxsession')] } }

describe('wxsession.d.ts', () => {
  it('package.json points at it', () => {
    const pkg = require(path.join(CLIENT, 'package.json'))
    assert.strictEqual(pkg.types, 'wxsession.d.ts')
    assert.ok(pkg.files.includes('wxsession.d.ts'))
    assert.match(devTool('typescript').version, /^5\./)
  })

  it('a strict consumer of every public member compiles, for each module setting', () => {
    const ts = devTool('typescript')
    const settings = [
      {},
      { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 },
      { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler },
      { exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, esModuleInterop: true }
    ]
    for (const extra of settings) {
      const errors = typeCheck([path.join(TYPES, 'consumer.ts')], Object.assign({}, inRepo, extra))
      assert.deepStrictEqual(errors, [], JSON.stringify(extra))
    }
  })

  it('the consumer names every export and every WxSession method', () => {
    const ts = devTool('typescript')
    const declarations = path.join(CLIENT, 'wxsession.d.ts')
    const program = ts.createProgram([declarations], { noEmit: true, types: [] })
    const checker = program.getTypeChecker()
    const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(declarations)))
    const names = exports.map((s) => s.name)
    assert.ok(names.length > 30, names.join(' '))
    const consumer = fs.readFileSync(path.join(TYPES, 'consumer.ts'), 'utf8')
    const missing = names.filter((name) => !new RegExp('\\b' + name + '\\b').test(consumer))
    assert.deepStrictEqual(missing, [])
    const session = exports.find((s) => s.name === 'WxSession')
    const methods = checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(session)).map((s) => s.name)
    assert.deepStrictEqual(methods.filter((m) => !consumer.includes('session.' + m + '(') &&
      !consumer.includes('session.' + m + '<')), [])
  })

  it('accepts the real wx of miniprogram-api-typings', () => {
    const errors = typeCheck([path.join(TYPES, 'wx_typings.ts')],
      Object.assign({ typeRoots: [MODULES] }, inRepo))
    assert.deepStrictEqual(errors, [])
  })

  it('refuses a misspelt option name', () => {
    const errors = typeCheck([path.join(TYPES, 'wrong_option.ts')], inRepo)
    assert.strictEqual(errors.length, 1, errors.join('\n'))
    assert.match(errors[0], /wrong_option\.ts\(7,[0-9]+\): error TS(2353|2561): .*'timout'/)
  })
})
