// Must NOT compile: a misspelt option name (`timout`) is an error, not a
// silently dropped option. client_types_test.js checks that tsc refuses it
// and names the option.
import { WxSession } from 'wxsessiond-client'

declare const session: WxSession
session.request({ url: '/api/profile', timout: 5000 })
