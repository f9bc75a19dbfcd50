// The app owns one WxSession; every page reaches it with getApp().session.
const { WxSession } = require('./utils/wxsession')

App({
  session: new WxSession({
    // Your host: nginx sends /v1/* to wxsessiond and /api/* to your API.
    baseURL: 'https://api.example.com',
    // Optional when wxsessiond serves a single app.
    appid: 'wx1234567890abcdef'
  }),

  onLaunch () {
    // Log in early, so the session_key the server holds is current before
    // any tap that yields encrypted data. Requests would log in by
    // themselves anyway.
    if (!this.session.sessionId()) {
      this.session.login().catch((err) => {
        console.warn('login failed:', err.code, err.message)
      })
    }
  }
})
