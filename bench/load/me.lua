-- GET /v1/me with a bearer token; each request takes the next of its thread's players.
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local tokens_lib = require("tokens")

local counter = 1
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

local mine, n = nil, 0
function init(args)
  mine = tokens_lib.slice(tokens_lib.load(), index, tonumber(os.getenv("WRK_THREADS") or "2"))
end

function request()
  n = n + 1
  local token = mine[(n % #mine) + 1]
  return wrk.format("GET", "/v1/me", { ["Authorization"] = "Bearer " .. token })
end
