-- Once an event is committed in PostgreSQL, what it wrote for one SKU in Redis
-- may go after a short grace: PostgreSQL now answers for it (contract, section 4).
-- It touches only its KEYS (Redis Cluster): after a crash, the worker reads the
-- lines the event filled from its mark and passes them.
--
-- KEYS[1]   the event's mark for this SKU: inventory:applied:{SKU}:EVENT_ID
-- KEYS[2..] order lines and pick tallies the event may have written, the lines
--           it filled from a queue among them (more is harmless: a key it did
--           not write is left alone)
-- ARGV[1]   the event (the writer apply_event.lua recorded)
-- ARGV[2]   the grace, milliseconds
--
-- A key expires when its last uncommitted writer is released, unless it holds a
-- line still waiting in a queue (that one stays until it is filled or dropped).

local grace = ARGV[2]
-- Never an error for what another writer left in a key: the event is committed,
-- and a release that failed would be retried with every batch.
local function release(k)
    if redis.call('TYPE', k).ok == 'hash' and redis.call('HDEL', k, 'w:' .. ARGV[1]) == 1
        and redis.call('HINCRBY', k, 'writers', -1) <= 0
        and redis.call('HGET', k, 'status') ~= 'backordered' then
        redis.call('PEXPIRE', k, grace)
    end
end

redis.call('PEXPIRE', KEYS[1], grace)
for i = 2, #KEYS do
    release(KEYS[i])
end
return 0
