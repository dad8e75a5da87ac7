-- Tollgate's admission script: every bucket (GCRA) and the quota of one request, decided and
-- recorded atomically, in one round trip. Time is the Redis server's, so the proxies' clocks
-- do not matter.
--
-- KEYS: one per bucket, then the quota's when ARGV[2] is '1', then (optionally) the usage
-- hash of the key's plan and day.
-- ARGV[1]: the number of buckets n; ARGV[2]: '1' when there is a quota;
-- ARGV[2+2i-1], ARGV[2+2i]: bucket i's emission interval and tolerance, in microseconds
--   (tolerance = interval * burst: a full bucket admits `burst` requests at once);
-- then the quota's limit and the Unix second its period ends;
-- then, with a usage hash, the key id: its field, incremented on admission (kept 91 days).
--
-- Returns {0, 0, 0, remaining_1, full_in_us_1, ..., remaining_n, full_in_us_n, quota_used}
-- when admitted, {1, i, retry_in_us} when bucket i refuses, {2, 0, 0} when the quota is spent.
-- Nothing is written unless the request is admitted.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local n = tonumber(ARGV[1])
local has_quota = ARGV[2] == '1'

local out = {0, 0, 0}
local new_tats = {}
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if now < allow_at then
    return {1, i, allow_at - now}
  end
  new_tats[i] = new_tat
  out[#out + 1] = math.floor((tolerance - (new_tat - now)) / interval)
  out[#out + 1] = new_tat - now
end

local used = 0
if has_quota then
  local limit = tonumber(ARGV[3 + 2 * n])
  local ends_at = tonumber(ARGV[4 + 2 * n])
  used = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if used >= limit then
    return {2, 0, 0}
  end
  used = redis.call('INCR', KEYS[n + 1])
  redis.call('EXPIREAT', KEYS[n + 1], ends_at + 60)
end

for i = 1, n do
  redis.call('SET', KEYS[i], new_tats[i], 'PX', math.ceil((new_tats[i] - now) / 1000) + 1)
end
local usage_key = KEYS[n + (has_quota and 2 or 1)]
if usage_key then
  local tenant = ARGV[3 + 2 * n + (has_quota and 2 or 0)]
  redis.call('HINCRBY', usage_key, tenant, 1)
  redis.call('EXPIRE', usage_key, 91 * 86400)
end

out[#out + 1] = used
return out
