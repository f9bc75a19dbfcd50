// client/wxsession.js stays what every mini-program base library runs
// without "enhanced compile": one CommonJS file in ES2015 syntax (checked by
// acorn, pinned in client/package-lock.json, at ecmaVersion 2015), requiring
// nothing, and using no library call newer than ES2015 that base libraries
// may lack.
'use strict'

const { describe, it } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const path = require('node:path')

const { CLIENT, devTool } = require('./dev_tools')

const SOURCE = fs.readFileSync(path.join(CLIENT, 'wxsession.js'), 'utf8')

// Parses `source` as an ES2015 script; throws a SyntaxError naming the line
// of the first newer construct.
function parse2015 (source) {
  return devTool('acorn').parse(source, { ecmaVersion: 2015, sourceType: 'script', locations: true })
}

// Every node of `ast`, depth first.
function * nodes (node) {
  if (!node || typeof node.type !== 'string') return
  yield node
  for (const key of Object.keys(node)) {
    const value = node[key]
    if (Array.isArray(value)) for (const child of value) yield * nodes(child)
    else if (value && typeof value === 'object' && key !== 'loc') yield * nodes(value)
  }
}

// Library members from ES2016 and later that would parse as ES2015 but fail
// on an old base library.
const NEWER_MEMBERS = ['includes', 'padStart', 'padEnd', 'entries', 'values', 'fromEntries',
  'finally', 'allSettled', 'any', 'flat', 'flatMap', 'trimStart', 'trimEnd', 'matchAll',
  'replaceAll', 'at', 'hasOwn', 'structuredClone', 'findLast', 'findLastIndex']

describe('wxsession.js', () => {
  it('parses as ES2015', () => {
    assert.doesNotThrow(() => parse2015(SOURCE))
  })

  it('the check refuses newer syntax', () => {
    const newer = ['async function f () {}', 'x ** 2', 'const { ...rest } = o',
      'f(...a, { ...b })', 'a?.b', 'a ?? b', 'class A { #p = 1 }', 'try {} catch {}']
    for (const snippet of newer) {
      assert.throws(() => parse2015(snippet), SyntaxError, snippet)
    }
  })

  it('is CommonJS that requires nothing', () => {
    const ast = parse2015(SOURCE)
    for (const node of nodes(ast)) {
      const callee = node.type === 'CallExpression' && node.callee
      if (callee && callee.type === 'Identifier' && callee.name === 'require') {
        assert.fail('require() at line ' + node.loc.start.line)
      }
      assert.notStrictEqual(node.type, 'ImportExpression', 'import()')
    }
    assert.match(SOURCE, /\nmodule\.exports = \{ WxSession: WxSession \}\n$/)
  })

  it('calls no library member newer than ES2015', () => {
    const used = []
    for (const node of nodes(parse2015(SOURCE))) {
      if (node.type === 'MemberExpression' && !node.computed &&
          NEWER_MEMBERS.includes(node.property.name)) {
        used.push(node.property.name + ' at line ' + node.loc.start.line)
      }
    }
    assert.deepStrictEqual(used, [])
  })
})
