// The WeChat client wrapper: every call to WeChat passes a bulkhead and is
// timed into the metrics.
//
// The bulkhead (wechat.max_concurrent) is what keeps a slow WeChat from
// taking every HTTP worker thread: at most max_concurrent calls run at once
// and max_waiting more wait, each up to max_wait_ms, for a place; any other
// call fails at once with kUpstreamUnavailable (503, Retry-After 1). Sized
// so that running plus waiting calls leave some HTTP threads free (see
// UpstreamReservedThreads in config.h), session lookups, which never call
// WeChat, always have threads, and the calls refused at once free theirs
// within microseconds.
//
// Thread-safety: as WeChatClient, calls may run concurrently.
#ifndef WXSESSION_WECHAT_GUARD_H_
#define WXSESSION_WECHAT_GUARD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ops/metrics.h"
#include "wxsession/platform.h"
#include "wxsession/wechat.h"

namespace wxsession {

struct UpstreamGuardOptions {
  int max_concurrent = 8;      // calls to WeChat in flight at once
  int max_waiting = 8;         // calls that may wait for a place
  int64_t max_wait_ms = 1000;  // how long a call waits for a free place
  // The platform of an appid, for the metrics' platform label and the api
  // name of a login (LoginApiName); unset means every app is WeChat's.
  std::function<Platform(const std::string& appid)> platform_of;
};

// Wraps `inner`, which must outlive the wrapper. `metrics` may be null.
// Besides `inner`'s outcomes, every call may fail with kUpstreamUnavailable
// (retry_after 1) when the bulkhead is full.
std::unique_ptr<WeChatClient> NewGuardedWeChatClient(
    WeChatClient& inner, const UpstreamGuardOptions& options, Metrics* metrics);

}  // namespace wxsession

#endif  // WXSESSION_WECHAT_GUARD_H_
