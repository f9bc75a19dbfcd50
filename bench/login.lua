-- wrk script: POST /v1/login with a code never used before, so every request
-- is a real exchange with (mock) WeChat and a new session.
local counter = 0
local prefix = ""

function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 1000000000)))
end

function init(args)
  prefix = "bench" .. (thread_tag or tostring(math.random(1, 1000000000)))
end

function request()
  counter = counter + 1
  local body = '{"code":"' .. prefix .. "x" .. counter .. '.1"}'
  return wrk.format("POST", "/v1/login",
                    { ["Content-Type"] = "application/json" }, body)
end
