-- POST /v1/games/slots/spin {"bet":1} with a bearer token and a unique Idempotency-Key; each
-- request takes the next of its thread's players, so concurrent spins are mostly of different
-- players (a player's spins are serialised by its wallet anyway).
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local tokens_lib = require("tokens")

local counter = 1
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

local mine, n, run = nil, 0, nil
function init(args)
  mine = tokens_lib.slice(tokens_lib.load(), index, tonumber(os.getenv("WRK_THREADS") or "2"))
  run = os.getenv("RUN_ID") or tostring(os.time())
end

function request()
  n = n + 1
  local token = mine[(n % #mine) + 1]
  return wrk.format("POST", "/v1/games/slots/spin", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%s-%d-%d", run, index, n),
  }, '{"bet":1}')
end

-- Non-2xx answers are counted by wrk ("Non-2xx or 3xx responses"); the harness treats any as a
-- failed run.
