-- Give back units a limit counted for one key at a time: from the bucket
-- that time falls in, in every window whose ring still holds it, never
-- below zero (policy-core's LimitTable::refund).
--
-- KEYS[1]  the key's hash (see limit.lua)
-- ARGV     the time counted at (ms), units, the number of windows N, then
--          the N window lengths (ms)
-- Returns  1 if the key exists, 0 if not (nothing to give back)
local key = KEYS[1]
local at = tonumber(ARGV[1])
local units = tonumber(ARGV[2])
local n = tonumber(ARGV[3])

local last_text = redis.call('HGET', key, 'l')
if not last_text then
  return 0
end
local last = tonumber(last_text)
for w = 1, n do
  local per = tonumber(ARGV[3 + w])
  local width = idiv(per + BUCKETS - 1, BUCKETS)
  local head, bucket = idiv(last, width), idiv(at, width)
  if bucket <= head and head - bucket < SLOTS then
    local f = (w - 1) .. '.' .. (bucket - idiv(bucket, SLOTS) * SLOTS)
    local v = tonumber(redis.call('HGET', key, f)) or 0
    redis.call('HSET', key, f, math.max(v - units, 0))
  end
end
return 1
