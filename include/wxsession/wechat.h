// WeChatClient: the calls wxsessiond makes to WeChat's server API.
//
// The production implementation (src/wechat_http.cc) speaks HTTP(S) to
// `api_base`; tests use a fake. Every call maps WeChat's answer onto the
// closed error-code set so callers never see errcodes:
//   errcode 40029, 40163            -> kInvalidCode
//   errcode 40226                   -> kLoginBlocked
//   errcode 45011                   -> kRateLimited (retry_after 60)
//   errcode -1, connect failure,
//   reset, timeout                  -> kUpstreamUnavailable (retry_after set)
//   any other errcode, a non-JSON
//   or non-200 reply                -> kUpstreamError
// Messages may quote errcode and errmsg; they never contain the app secret.
//
// Thread-safety: implementations must allow concurrent calls.
#ifndef WXSESSION_WECHAT_H_
#define WXSESSION_WECHAT_H_

#include <memory>
#include <optional>
#include <string>

#include "wxsession/status.h"

namespace wxsession {

struct WeChatSession {
  std::string openid;
  std::string session_key;  // base64 text as WeChat sends it
  std::optional<std::string> unionid;
};

class WeChatClient {
 public:
  virtual ~WeChatClient() = default;

  // GET /sns/jscode2session. Retries once, only where that is safe: after
  // errcode -1 or a connection that never carried the request; never after a
  // read timeout, since the code may already be spent.
  virtual Result<WeChatSession> Code2Session(const std::string& appid,
                                             const std::string& secret,
                                             const std::string& code) = 0;
};

struct WeChatHttpOptions {
  std::string api_base;     // e.g. https://api.weixin.qq.com
  int64_t timeout_ms = 5000;  // connect and read, each
};

std::unique_ptr<WeChatClient> NewHttpWeChatClient(
    const WeChatHttpOptions& options);

// Maps a WeChat errcode (non-zero) with its errmsg onto a Status, as in the
// table above. `api` names the call for the message, e.g. "jscode2session".
Status StatusFromWeChatError(const std::string& api, long long errcode,
                             const std::string& errmsg);

}  // namespace wxsession

#endif  // WXSESSION_WECHAT_H_
