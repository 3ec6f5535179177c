-- What the scripts share (each is sent as this prelude and its own text).

-- Buckets per window, and the slots of its ring (policy-core's
-- limits/window.rs: BUCKETS, SLOTS).
local BUCKETS = 16
local SLOTS = 17

-- Integer division of non-negative integers below 2^53, exactly (Lua's
-- numbers are doubles: a / b may round up to the next integer).
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

