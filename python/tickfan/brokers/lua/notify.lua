-- Shared by the scripts that create notifications (prepended to them by brokers/redis.py).
-- A notification of user U: id from tf:nid (one counter: ids increase across users), its JSON
-- {kind,title,body,data,created_at} in HASH tf:u:{U}:n, its id in ZSETs tf:u:{U}:all and
-- tf:u:{U}:unread (score = id), and one tf:events entry {k=n, u=U, i=id, j=json} so every node
-- pushes it to U's sockets.
local function tf_notify(user, json, events, events_max)
  local prefix = 'tf:u:{' .. user .. '}:'
  local id = redis.call('INCR', 'tf:nid')
  redis.call('HSET', prefix .. 'n', id, json)
  redis.call('ZADD', prefix .. 'all', id, id)
  redis.call('ZADD', prefix .. 'unread', id, id)
  redis.call('XADD', events, 'MAXLEN', '~', events_max, '*', 'k', 'n', 'u', user, 'i', id, 'j', json)
  return id
end
