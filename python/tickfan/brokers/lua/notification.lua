-- Store a notification and announce it (tf_notify, prepended). KEYS: 1 tf:events
-- ARGV: 1 user  2 JSON {kind,title,body,data,created_at}  3 max tf:events length. Returns the id.
return tf_notify(ARGV[1], ARGV[2], KEYS[1], ARGV[3])
