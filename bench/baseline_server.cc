// The benchmark's ceiling: a trivial cpp-httplib server on wxsessiond's own
// HTTP layer (GuardedServer, the connection handling wxsessiond serves plain
// HTTP with, and ApplyServerSettings), answering a constant session-shaped
// JSON on GET /v1/session and 204 on GET /v1/auth. Whatever wxsessiond loses
// against this is the handlers' (store, crypto, logging); what this cannot do
// is the HTTP layer's.
//
// usage: bench_baseline [--listen HOST:PORT] [--threads N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http/connections.h"

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--listen") == 0) {
      std::string listen = argv[i + 1];
      size_t colon = listen.rfind(':');
      host = listen.substr(0, colon);
      port = std::atoi(listen.c_str() + colon + 1);
    } else if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[i + 1]);
    }
  }
  wxsession::GuardedServer server;
  wxsession::ApplyServerSettings(server, threads);
  const std::string body =
      R"({"appid":"wxbench00000000000","openid":"o0123456789abcdefghijklmnopq",)"
      R"("unionid":null,"created_at":1700000000,"last_seen_at":1700000000,)"
      R"("expires_at":1700604800})";
  server.Get("/v1/session",
             [&body](const httplib::Request&, httplib::Response& res) {
               res.set_content(body, "application/json");
             });
  server.Get("/v1/auth", [](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    res.set_header("X-WX-AppID", "wxbench00000000000");
    res.set_header("X-WX-OpenID", "o0123456789abcdefghijklmnopq");
  });
  wxsession::Result<int> bound = server.BindListener(host, port);
  if (!bound.ok()) {
    std::fprintf(stderr, "bench_baseline: %s\n",
                 bound.status().message().c_str());
    return 1;
  }
  std::printf("baseline listening on http://%s:%d\n", host.c_str(),
              bound.value());
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}
