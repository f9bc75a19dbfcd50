// WeChatClient: the calls wxsessiond makes to WeChat's server API.
//
// The production implementation (src/wechat/client.cc) speaks HTTP(S) to
// `api_base`; tests use a fake. Every call maps WeChat's answer onto the
// closed error-code set so callers never see errcodes:
//   errcode 40029, 40163            -> kInvalidCode
//   errcode 40226                   -> kLoginBlocked
//   errcode 45011                   -> kRateLimited (retry_after 60)
//   errcode -1, connect failure,
//   reset, timeout                  -> kUpstreamUnavailable (retry_after set)
//   any other errcode, a non-JSON
//   or non-200 reply                -> kUpstreamError
// Messages may quote errcode and errmsg; they never contain the app secret,
// a code, an access_token or anything derived from a session_key.
//
// Calls that need an access_token take it from an AccessTokenSource (the
// access-token centre). When WeChat answers such a call with 40001 (invalid
// credential) or 42001 (token expired), the client asks the source for a
// replacement once and repeats the call once; a second rejection is
// kUpstreamError.
//
// Thread-safety: implementations must allow concurrent calls.
#ifndef WXSESSION_WECHAT_H_
#define WXSESSION_WECHAT_H_

#include <cstdint>
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

// A token from POST /cgi-bin/stable_token.
struct StableAccessToken {
  std::string access_token;
  int64_t expires_in = 0;  // seconds from WeChat's answer, > 0
};

// phone_info from getuserphonenumber. countryCode is always text here,
// though WeChat has been seen to send it as a number.
struct PhoneNumber {
  std::string phone_number;       // with the country code for non-CN numbers
  std::string pure_phone_number;  // without it
  std::string country_code;
  std::string watermark_appid;      // "" when WeChat sent no watermark
  int64_t watermark_timestamp = 0;  // unix seconds; 0 when absent
};

// Where the calls that need an access_token get one.
//
// Thread-safety: implementations must allow concurrent calls.
class AccessTokenSource {
 public:
  virtual ~AccessTokenSource() = default;

  // A token for `appid` believed valid. Errors: kUnknownApp, kInvalidRequest
  // (appid empty among several apps), kStoreUnavailable, and what
  // WeChatClient::StableToken answers.
  virtual Result<std::string> AccessTokenFor(const std::string& appid) = 0;

  // WeChat rejected `rejected` (40001/42001): a different token, fetched
  // with force_refresh unless someone has already replaced it. Errors as
  // AccessTokenFor, plus kUpstreamError when a forced refresh is not allowed
  // yet (WeChat permits one per 30 s).
  virtual Result<std::string> ReplaceRejectedAccessToken(
      const std::string& appid, const std::string& rejected) = 0;
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

  // POST /cgi-bin/stable_token {"grant_type": "client_credential", appid,
  // secret, force_refresh}. Never the legacy /cgi-bin/token, whose every
  // fetch invalidates the tokens other callers hold. Retries as
  // Code2Session. Errors: the table above (40001 here means a bad secret:
  // kUpstreamError); a reply without a non-empty access_token or a positive
  // expires_in is kUpstreamError.
  virtual Result<StableAccessToken> StableToken(const std::string& appid,
                                                const std::string& secret,
                                                bool force_refresh) = 0;

  // POST /wxa/business/getuserphonenumber?access_token=... {code, openid}.
  // The code is single-use, so retries follow Code2Session's rule. Errors:
  // those of `tokens`, the table above (40029 -> kInvalidCode), and
  // kUpstreamError for a reply without phone_info and its three fields.
  virtual Result<PhoneNumber> GetPhoneNumber(AccessTokenSource& tokens,
                                             const std::string& appid,
                                             const std::string& code,
                                             const std::string& openid) = 0;

  // GET /wxa/checksession?access_token&openid&signature&sig_method=
  // hmac_sha256, signed with CheckSessionSignature(session_key). true when
  // WeChat accepts the key, false on 87009 (the key is no longer valid).
  // Errors: those of `tokens` and the table above.
  virtual Result<bool> CheckSessionKey(AccessTokenSource& tokens,
                                       const std::string& appid,
                                       const std::string& openid,
                                       const std::string& session_key) = 0;
};

// The signature checksession wants: lowercase hex HMAC-SHA256 keyed with
// the session_key's base64 text (as sent by WeChat) over the empty string.
std::string CheckSessionSignature(const std::string& session_key);

struct WeChatHttpOptions {
  std::string api_base;       // e.g. https://api.weixin.qq.com
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
