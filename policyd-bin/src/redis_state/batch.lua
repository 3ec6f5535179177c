-- Several calls of one request in one round trip, in order, stopping
-- after the first that ends the walk (a limit's refusal, a greylist's
-- deferral), as the walk would (policy-core's state/prefetch.rs).
--
-- KEYS     each call's keys in turn: a limit's one, a greylist's two
-- ARGV     the number of calls, then for each: `l` or `g`, the number of
--          its arguments, its arguments (as limit_step's and
--          greylist_step's)
-- Returns  one reply per call made, as limit.lua's and greylist.lua's
local calls = tonumber(ARGV[1])
local at, k = 2, 1
local replies = {}
for _ = 1, calls do
  local kind, n = ARGV[at], tonumber(ARGV[at + 1])
  local a = {}
  for j = 1, n do
    a[j] = ARGV[at + 1 + j]
  end
  at = at + 2 + n
  local reply, stops
  if kind == 'l' then
    reply = limit_step(KEYS[k], a)
    k = k + 1
    stops = reply[1] == 2
  else
    reply = greylist_step(KEYS[k], KEYS[k + 1], a)
    k = k + 2
    stops = reply[1] == 3
  end
  replies[#replies + 1] = reply
  if stops then
    break
  end
end
return replies
