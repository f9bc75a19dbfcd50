// One page: an authenticated call to the team's own API, the phone number
// from a getPhoneNumber button, and logout. Promises rather than
// async/await, so the page needs no "enhanced compile" setting.
const app = getApp()

Page({
  data: {
    loading: false,
    profile: null,
    profileText: '',
    phone: null,
    error: ''
  },

  onLoad () {
    return this.loadProfile()
  },

  // GET https://api.example.com/api/profile with Authorization: Bearer <id>.
  // nginx asks wxsessiond (auth_request) whether the session is live and
  // passes the user's openid to the API in X-WX-OpenID. A first launch
  // logs in here; an ended session logs in again and retries, unseen.
  loadProfile () {
    this.setData({ loading: true, error: '' })
    return app.session.request({ url: '/api/profile' })
      .then((res) => {
        if (res.statusCode === 200) {
          this.setData({ profile: res.data, profileText: JSON.stringify(res.data) })
        } else {
          this.setData({ error: 'the API answered HTTP ' + res.statusCode })
        }
      })
      .catch((err) => {
        // err.code: network_error, wx_login_failed, or wxsessiond's error
        // (login_blocked, rate_limited, upstream_unavailable, ...).
        this.setData({ error: err.message })
      })
      .then(() => this.setData({ loading: false }))
  },

  // <button open-type="getPhoneNumber">: e.detail.code goes to wxsessiond,
  // which asks WeChat for the number with the app's access token.
  onGetPhoneNumber (e) {
    if (!e.detail.code) {
      this.setData({ error: 'the phone number was not shared' })
      return Promise.resolve()
    }
    return app.session.phoneNumber(e.detail.code)
      .then((phone) => this.setData({ phone, error: '' }))
      .catch((err) => this.setData({ error: err.message }))
  },

  onLogout () {
    return app.session.logout()
      .catch((err) => console.warn('logout not confirmed by the server:', err.message))
      .then(() => this.setData({ profile: null, profileText: '', phone: null }))
  }
})
