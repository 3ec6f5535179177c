-- A limit's check (and count) for one key, atomically: the algorithm of
-- policy-core's LimitTable (limits/window.rs), which the model tests compare
-- it with. Times are the caller's milliseconds (the request's time), so
-- every host of a cluster must keep its clock in step (NTP).
--
-- key      the key's hash: "l" the last millisecond counted at, "t" the
--          key's text (for display), "W.S" window W's ring slot S
-- a        now, units, count (1 or 0), the key's text, the number of
--          windows N, then N pairs: window length (ms), maximum
-- Returns  {0} admitted (counted if asked), or
--          {2, window (from 0), units counted, retry after ms or -1 never}
local function limit_step(key, a)
  local real_now = tonumber(a[1])
  local units = tonumber(a[2])
  local count = a[3] == '1'
  local text = a[4]
  local n = tonumber(a[5])
  if units == 0 then
    -- Nothing to count (the local table does not even look).
    return {0}
  end
  -- The largest count a bucket keeps (Lua numbers are doubles).
  local CMAX = 9007199254740991

  local function slot(i)
    return i - idiv(i, SLOTS) * SLOTS
  end

  local per, max, width = {}, {}, {}
  for w = 1, n do
    per[w] = tonumber(a[4 + 2 * w])
    max[w] = tonumber(a[5 + 2 * w])
    width[w] = idiv(per[w] + BUCKETS - 1, BUCKETS)
  end

  -- Milliseconds (request time) until the key holds nothing, from `last`.
  local function expires_in(last)
    local at = 0
    for w = 1, n do
      local e = (idiv(last, width[w]) + 1) * width[w] + per[w] - 1
      if e > at then at = e end
    end
    return at - real_now
  end

  local function field(w, s)
    return (w - 1) .. '.' .. s
  end

  local last_text = redis.call('HGET', key, 'l')
  if not last_text then
    -- A new key: nothing counted yet, so only a window's max can refuse.
    for w = 1, n do
      if units > max[w] then
        return {2, w - 1, 0, -1}
      end
    end
    if not count then
      return {0}
    end
    local set = {'l', real_now, 't', text}
    for w = 1, n do
      set[#set + 1] = field(w, slot(idiv(real_now, width[w])))
      set[#set + 1] = units
    end
    redis.call('HSET', key, unpack(set))
    redis.call('PEXPIRE', key, math.max(expires_in(real_now), 1) + 1000)
    return {0}
  end

  local last = tonumber(last_text)
  local now = math.max(real_now, last)

  -- Every ring, read at once.
  local names = {}
  for w = 1, n do
    for s = 0, SLOTS - 1 do
      names[#names + 1] = field(w, s)
    end
  end
  local values = redis.call('HMGET', key, unpack(names))
  local ring = {}
  for w = 1, n do
    ring[w] = {}
    for s = 0, SLOTS - 1 do
      ring[w][s] = tonumber(values[(w - 1) * SLOTS + s + 1]) or 0
    end
  end

  local function lowest_counted(w, t)
    return idiv(math.max(t + 1 - per[w], 0), width[w])
  end

  local function usage(w)
    local head = idiv(last, width[w])
    local lo = lowest_counted(w, now)
    if head < lo then
      return 0
    end
    local sum = 0
    for i = math.max(lo, head - BUCKETS), head do
      sum = sum + ring[w][slot(i)]
    end
    return sum
  end

  local function retry_after(w, counted, m)
    if units > m then
      return nil
    end
    local need = counted + units - m
    if need <= 0 then
      return 0
    end
    local head = idiv(last, width[w])
    local freed, leaves = 0, head
    for i = math.max(lowest_counted(w, now), head - BUCKETS), head do
      freed = freed + ring[w][slot(i)]
      leaves = i
      if freed >= need then
        break
      end
    end
    local free_at = (leaves + 1) * width[w] + per[w] - 1
    return math.max(free_at - real_now, 0)
  end

  local refusal = nil
  for w = 1, n do
    local counted = usage(w)
    if counted + units > max[w] then
      local retry = retry_after(w, counted, max[w])
      local later
      if refusal == nil then
        later = true
      elseif retry ~= nil then
        later = refusal.retry ~= nil and retry > refusal.retry
      else
        later = refusal.retry ~= nil
      end
      if later then
        refusal = {window = w - 1, counted = counted, retry = retry}
      end
    end
  end
  if refusal ~= nil then
    return {2, refusal.window, refusal.counted, refusal.retry or -1}
  end
  if not count then
    return {0}
  end

  -- Count: advance every ring to `now` (the slots of buckets that ended are
  -- emptied), add to the bucket under way; only the slots that change are
  -- written.
  local set = {'l', now}
  for w = 1, n do
    local head = idiv(last, width[w])
    local cur = idiv(now, width[w])
    local first = head + 1
    if cur - head >= SLOTS then
      first = cur - SLOTS + 1
    end
    for i = first, cur - 1 do
      local s = slot(i)
      if ring[w][s] ~= 0 then
        set[#set + 1] = field(w, s)
        set[#set + 1] = 0
      end
    end
    local s = slot(cur)
    local base = ring[w][s]
    if cur > head then
      base = 0
    end
    set[#set + 1] = field(w, s)
    set[#set + 1] = math.min(base + units, CMAX)
  end
  redis.call('HSET', key, unpack(set))
  redis.call('PEXPIRE', key, math.max(expires_in(now), 1) + 1000)
  return {0}
end
