-- Shared by the authenticated scripts: reads the bearer tokens the harness wrote (one a line,
-- file named by $TOKENS) and gives each wrk thread its own slice of the players, so that the
-- connections of one thread cycle through different players.
local M = {}

function M.load()
  local path = os.getenv("TOKENS")
  assert(path, "TOKENS must name the token file")
  local tokens = {}
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  assert(#tokens > 0, "no tokens in " .. path)
  return tokens
end

-- The tokens of thread `index` (1-based) of `threads`: players index, index+threads, ...
function M.slice(tokens, index, threads)
  local mine = {}
  for i = index, #tokens, threads do mine[#mine + 1] = tokens[i] end
  if #mine == 0 then mine = tokens end
  return mine
end

return M
