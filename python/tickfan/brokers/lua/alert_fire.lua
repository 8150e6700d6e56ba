-- Store.fire_alert: delete the alert and store its notification in one step (tf_notify,
-- prepended). KEYS: 1 tf:events. ARGV: 1 alert id  2 JSON {kind,title,body,data,created_at}
-- 3 max tf:events length. Returns {user, notification id}, or false if the alert is gone.
local key = 'tf:alert:' .. ARGV[1]
local a = redis.call('HMGET', key, 'user', 'symbol', 'direction')
if not a[1] then
  return false
end
redis.call('DEL', key)
redis.call('ZREM', 'tf:al:{' .. a[2] .. '}:' .. a[3], ARGV[1])
redis.call('ZREM', 'tf:u:{' .. a[1] .. '}:alerts', ARGV[1])
return {a[1], tf_notify(a[1], ARGV[2], KEYS[1], ARGV[3])}
