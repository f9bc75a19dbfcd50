// The real `wx` (miniprogram-api-typings, the typings mini-program projects
// use) is accepted as WxSession's `wx`, and the default global needs none.
/// <reference types="miniprogram-api-typings" />
import { WxSession } from 'wxsessiond-client'

const explicit = new WxSession({ baseURL: 'https://api.example.com', wx })
const implicit = new WxSession({ baseURL: 'https://api.example.com' })

// A result plugs into the platform's own calls.
explicit.downloadFile({ url: '/api/file' }).then((res) => {
  wx.saveImageToPhotosAlbum({ filePath: res.tempFilePath })
})
void implicit
