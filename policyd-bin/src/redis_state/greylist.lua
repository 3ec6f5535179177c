-- One greylisting step for a triplet, atomically: the semantics of
-- policy-core's GreylistTable::check (greylist/table.rs), which the model
-- tests compare it with. Times are kept in whole seconds rounded up, as
-- there; the caller's milliseconds are the request's time.
--
-- client   the client network: "l" last seen, "p" last pass counted, "n"
--          passes counted (seconds)
-- triplet  the triplet: "f" first attempt of its cycle (0 once passed),
--          "l" last seen (seconds)
-- a        now (ms), update (1 or 0), delay, retry window, max age (ms),
--          auto-whitelist passes (0: off)
-- Returns  {0} client whitelisted, {1} known, {2, waited ms} first
--          accepted retry, {3, retry after ms, first (1 or 0)} defer
local function greylist_step(client, triplet, a)
  local now = tonumber(a[1])
  local update = a[2] == '1'
  local delay = tonumber(a[3])
  local retry_window = tonumber(a[4])
  local max_age = tonumber(a[5])
  local auto_whitelist = tonumber(a[6])
  local PASS_COUNT_INTERVAL = 3600000
  local U32_MAX = 4294967295

  local function secs_up(ms)
    return math.max(math.min(idiv(ms + 999, 1000), U32_MAX), 1)
  end

  local now_s = secs_up(now)

  -- Keys expire with their entries (request time, plus a second of slack).
  local function expire(key, at)
    redis.call('PEXPIRE', key, math.max(at - now, 1) + 1000)
  end

  if auto_whitelist > 0 then
    local c = redis.call('HMGET', client, 'l', 'n')
    if c[1] then
      local last = tonumber(c[1])
      local expiry = last * 1000 + max_age + 1
      if tonumber(c[2]) >= auto_whitelist and now < expiry then
        if update then
          last = math.max(last, now_s)
          redis.call('HSET', client, 'l', last)
          expire(client, last * 1000 + max_age + 1)
        end
        return {0}
      end
    end
  end

  local restart = {3, math.max(now_s * 1000 + delay - now, 0), 1}
  local t = redis.call('HMGET', triplet, 'f', 'l')
  local verdict = nil
  local first, last
  if not t[1] then
    if not update then
      return restart
    end
    first, last = now_s, now_s
  else
    first, last = tonumber(t[1]), tonumber(t[2])
    if first == 0 then
      if now < last * 1000 + max_age + 1 then
        verdict = {1}
      end
    else
      local age = math.max(now - first * 1000, 0)
      if age < delay then
        verdict = {3, first * 1000 + delay - now, 0}
      elseif age <= retry_window then
        verdict = {2, age}
      end
    end
    if update then
      last = math.max(last, now_s)
      if verdict ~= nil and verdict[1] == 2 then
        first = 0
      elseif verdict == nil then
        first = now_s
      end
    end
  end
  if update then
    redis.call('HSET', triplet, 'f', first, 'l', last)
    if first == 0 then
      expire(triplet, last * 1000 + max_age + 1)
    else
      expire(triplet, first * 1000 + retry_window + 1)
    end
  end
  if verdict == nil then
    verdict = restart
  end

  -- The first accepted retry counts a pass for the client network (at most
  -- one an hour; from none again after max_age of silence).
  if auto_whitelist > 0 and update and verdict[1] == 2 then
    local c = redis.call('HMGET', client, 'l', 'p', 'n')
    local cl, passes, pass_at
    if c[1] then
      cl, pass_at, passes = tonumber(c[1]), tonumber(c[2]), tonumber(c[3])
      if now >= cl * 1000 + max_age + 1 then
        passes, pass_at = 1, now_s
      elseif now >= pass_at * 1000 + PASS_COUNT_INTERVAL then
        passes, pass_at = passes + 1, now_s
      end
      cl = math.max(cl, now_s)
    else
      cl, pass_at, passes = now_s, now_s, 1
    end
    redis.call('HSET', client, 'l', cl, 'p', pass_at, 'n', passes)
    expire(client, cl * 1000 + max_age + 1)
  end
  return verdict
end
