-- Gives back what admit.lua took for a request that a later call refused (on a Redis Cluster a
-- request's counters are decided in two calls, one per slot): each bucket's theoretical arrival
-- time moves back one emission interval, and the quota's count down by one.
--
-- KEYS: one per bucket, then the quota's when ARGV[2] is '1'.
-- ARGV[1]: the number of buckets n; ARGV[2]: '1' when there is a quota;
-- ARGV[2+i]: bucket i's emission interval, in microseconds.

local n = tonumber(ARGV[1])
for i = 1, n do
  local tat = redis.call('GET', KEYS[i])
  if tat then
    local interval = tonumber(ARGV[2 + i])
    redis.call('SET', KEYS[i], tonumber(tat) - interval, 'KEEPTTL')
  end
end
if ARGV[2] == '1' then
  local used = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if used > 0 then
    redis.call('DECR', KEYS[n + 1])
  end
end
return 0
