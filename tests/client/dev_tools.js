// The client's pinned development tools (client/package.json
// devDependencies, client/package-lock.json): TypeScript, acorn and the
// mini-program typings, installed into client/node_modules by `npm ci`
// (./scripts/test runs it; see wxs_client_dev_deps in scripts/lib.sh).
// Node 18 APIs.
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const CLIENT = path.resolve(__dirname, '../../client')
const MODULES = path.join(CLIENT, 'node_modules')

// require(name) from client/node_modules, or an error saying how to get it.
function devTool (name) {
  const dir = path.join(MODULES, name)
  if (!fs.existsSync(path.join(dir, 'package.json'))) {
    throw new Error(name + ' is not installed in client/node_modules: run ' +
      '`npm ci` in client/ (./scripts/test does this)')
  }
  return require(dir)
}

// Type-checks `files` with TypeScript under `strict` and the given compiler
// options; returns the diagnostics as text, one per entry ([] = clean).
function typeCheck (files, options = {}) {
  const ts = devTool('typescript')
  const settings = Object.assign({
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    target: ts.ScriptTarget.ES2017,
    lib: ['lib.es2017.d.ts'],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: []
  }, options)
  const program = ts.createProgram(files, settings)
  const diagnostics = ts.getPreEmitDiagnostics(program)
  const host = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n'
  }
  return diagnostics.map((d) => ts.formatDiagnostic(d, host).trim())
}

module.exports = { CLIENT, MODULES, devTool, typeCheck }
