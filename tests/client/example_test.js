// examples/miniprogram/ runs: its app.js and page, loaded with stand-ins for
// the mini-program globals (App, Page, getApp, wx), log in, call the API
// behind nginx, get the phone number and log out.
'use strict'

const { describe, it, after } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const path = require('node:path')

const { createScriptedWx, authorizationOf } = require('./fake_wx')

const EXAMPLE = path.resolve(__dirname, '../../examples/miniprogram')
const BASE = 'https://api.example.com'

// What the example's host answers: wxsessiond's routes under /v1, the
// team's API under /api (nginx lets through only live sessions).
function host () {
  const state = { live: new Set(), issued: 0 }
  state.respond = (req) => {
    const pathname = req.url.slice(BASE.length)
    const id = (authorizationOf(req) || '').replace(/^Bearer /, '')
    if (pathname === '/v1/login') {
      state.issued += 1
      state.live.add('id-' + state.issued)
      return { statusCode: 200, data: { session_id: 'id-' + state.issued } }
    }
    if (!state.live.has(id)) {
      return { statusCode: 401, data: '<html>401</html>', header: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } }
    }
    if (pathname === '/api/profile') return { statusCode: 200, data: { openid: 'o-alice' } }
    if (pathname === '/v1/phone') {
      return { statusCode: 200, data: { phoneNumber: '+86 13800138000', purePhoneNumber: '13800138000', countryCode: '86' } }
    }
    if (pathname === '/v1/logout') {
      state.live.delete(id)
      return { statusCode: 204, data: '' }
    }
    return { statusCode: 404, data: {} }
  }
  return state
}

// A page instance as the runtime makes one: the Page() object plus data
// and setData.
function instantiate (definition) {
  const page = Object.assign({}, definition)
  page.data = JSON.parse(JSON.stringify(definition.data))
  page.setData = (changes) => Object.assign(page.data, changes)
  return page
}

describe('examples/miniprogram', () => {
  const saved = {}
  for (const name of ['App', 'Page', 'getApp', 'wx']) saved[name] = global[name]
  after(() => {
    for (const name of Object.keys(saved)) {
      if (saved[name] === undefined) delete global[name]
      else global[name] = saved[name]
    }
  })

  it('has valid JSON and handlers for every event the page binds', () => {
    const app = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'app.json'), 'utf8'))
    for (const page of app.pages) {
      for (const ext of ['.js', '.wxml', '.json']) {
        assert.ok(fs.existsSync(path.join(EXAMPLE, page + ext)), page + ext)
      }
      JSON.parse(fs.readFileSync(path.join(EXAMPLE, page + '.json'), 'utf8'))
    }
    JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'project.config.json'), 'utf8'))
    // The SDK in the example is the SDK in client/, not a copy.
    assert.strictEqual(fs.realpathSync(path.join(EXAMPLE, 'utils/wxsession.js')),
      path.resolve(__dirname, '../../client/wxsession.js'))
  })

  it('logs in once, loads the profile, gets the phone number and logs out', async () => {
    const state = host()
    const wx = createScriptedWx(state.respond)
    let appObject
    let pageDefinition
    global.wx = wx
    global.App = (definition) => { appObject = definition }
    global.getApp = () => appObject
    global.Page = (definition) => { pageDefinition = definition }
    require(path.join(EXAMPLE, 'app.js'))
    appObject.onLaunch()
    require(path.join(EXAMPLE, 'pages/index/index.js'))
    const wxml = fs.readFileSync(path.join(EXAMPLE, 'pages/index/index.wxml'), 'utf8')
    for (const match of wxml.matchAll(/bind\w+="(\w+)"/g)) {
      assert.strictEqual(typeof pageDefinition[match[1]], 'function', match[1])
    }

    const page = instantiate(pageDefinition)
    await page.onLoad()
    assert.deepStrictEqual(page.data.profile, { openid: 'o-alice' })
    assert.strictEqual(page.data.error, '')
    // onLaunch's login and the page's first request shared one wx.login.
    assert.strictEqual(wx.loginCalls, 1)
    const profileCalls = wx.requests.filter((r) => r.url === BASE + '/api/profile')
    assert.strictEqual(profileCalls.length, 1)
    assert.strictEqual(authorizationOf(profileCalls[0]), 'Bearer id-1')
    assert.strictEqual(wx.requests.find((r) => r.url === BASE + '/v1/login').data.appid, 'wx1234567890abcdef')

    await page.onGetPhoneNumber({ detail: { errMsg: 'getPhoneNumber:fail user deny' } })
    assert.match(page.data.error, /not shared/)
    await page.onGetPhoneNumber({ detail: { code: 'phone-code', errMsg: 'getPhoneNumber:ok' } })
    assert.strictEqual(page.data.phone.phoneNumber, '+86 13800138000')
    assert.deepStrictEqual(wx.requests.find((r) => r.url === BASE + '/v1/phone').data, { code: 'phone-code' })

    await page.onLogout()
    assert.strictEqual(page.data.profile, null)
    assert.strictEqual(state.live.size, 0)
    assert.strictEqual(appObject.session.sessionId(), null)
  })
})
