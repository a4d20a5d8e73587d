-- Once an event is committed in PostgreSQL, what it wrote for one SKU in Redis
-- may go after a short grace: PostgreSQL now answers for it (contract, section 4).
--
-- KEYS[1]   the event's mark for this SKU: inventory:applied:{SKU}:EVENT_ID
-- KEYS[2..] order lines and pick tallies the event may have written (more is
--           harmless: a key it did not write is left alone)
-- ARGV[1]   the event (the writer apply_event.lua recorded)
-- ARGV[2]   the grace, milliseconds
-- ARGV[3]   empty when KEYS name the lines the event filled from a queue; else
--           inventory:line:{SKU}:, and those lines are read from the mark's result
--           (a release after a crash, where the worker does not know them)
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

-- After a crash the worker does not know what the event filled: its mark does.
local mark = ARGV[3] ~= '' and redis.pcall('GET', KEYS[1])
if type(mark) == 'string' then
    local ok, result = pcall(cjson.decode, string.sub(mark, string.find(mark, '|', 1, true) + 1))
    if ok and type(result.fills) == 'table' then
        for _, fill in ipairs(result.fills) do
            release(ARGV[3] .. fill.order .. '|' .. fill.lineId)
        end
    end
end
redis.call('PEXPIRE', KEYS[1], grace)
for i = 2, #KEYS do
    release(KEYS[i])
end
return 0
