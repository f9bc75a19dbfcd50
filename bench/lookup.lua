-- wrk script: GET a path (default /v1/session) with a session id rotated
-- from a file of ids (one a line), so lookups spread over many sessions.
-- usage: wrk ... -s bench/lookup.lua URL -- TOKENS_FILE [PATH]
local tokens = {}
local path = "/v1/session"
local n = 0

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  if args[2] then path = args[2] end
  -- Threads start at different offsets so they do not walk in step.
  n = math.random(#tokens)
end

function request()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
