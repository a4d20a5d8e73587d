-- Applies events' changes to one SKU, each exactly once: quantity deltas at one or
-- two locations, pick tallies, allocation decisions for order lines,
-- cancellations, and backorders filled by stock that grew. Every key carries the
-- SKU's hash tag, so the call is atomic and lands in one Redis Cluster slot.
--
-- Nothing it writes expires while the event is not committed in PostgreSQL: the
-- mark is written without expiry, and every order line or pick tally it writes
-- records the event as a writer (field w:EVENT, counted in `writers`) and loses
-- any expiry. After the commit, release_keys.lua gives them a short grace. So a
-- key present here is never older than PostgreSQL; a key absent is read from
-- PostgreSQL (the worker passes what it holds).
--
-- One call applies the events of one SKU in a batch, in order (a SKU's events
-- depend on each other, other SKUs' do not): each bucket is read once and
-- written once per call, whatever the number of events.
--
-- It touches no key but those in KEYS (Redis Cluster: a key a script builds is
-- not supported, and while its slot migrates it reads as absent). The lines a
-- fill allocates are named by the queue, which the worker does not read: an
-- event whose fill would reach a line not in KEYS writes nothing and returns
-- 'keys' with the keys it needs; the worker calls again with them.
--
-- KEYS[1]   the Redis state sentinel, inventory:state:{DEPLOYMENT}
-- KEYS[...] the events' keys (see BASE), then any key a fill asked for
-- ARGV[1]   now, Unix milliseconds (updatedAt)
-- ARGV[2]   'apply', or 'check': only say whether each change could be applied
--           now, write nothing
-- ARGV[3]   the token the sentinel must hold: otherwise Redis lost its data, or
--           a repair is under way or done, and the call returns 'stale', TOKEN
--           (what the sentinel holds, '' when absent), having written nothing
-- ARGV[4]   the index in KEYS of the gate of the SKU's calls in one pipeline,
--           0 for a SKU's only call: a call that returns 'keys' sets it (for a
--           minute), and a call that finds it set runs none of its events (all
--           'skipped'), so that none runs ahead of the event that asked
-- then, per event, three arguments:
--   BASE    where its keys start in KEYS (0-based): its key number i is KEYS[BASE + i],
--           its first key (i = 1) its mark for this SKU, inventory:applied:{SKU}:EVENT_ID
--   DIGEST  the payload digest (what "the same event" means)
--   OPS     the operations, JSON, naming its keys by number:
--   policy     "strict" (a queued line that does not fit blocks the ones behind
--              it) or "fits" (smaller lines behind it may go first)
--   eventId    the event (or the worker's token for a late release), recorded as
--              what caused each decision and as the writer of each key
--   lineKeyPrefix  inventory:line:{SKU}: (a queue's member ORDER|LINE|Q is the
--              line inventory:line:{SKU}:ORDER|LINE, which must be in KEYS to be filled)
--   seq        index of the SKU's backorder sequence key
--   locations  [{live, queue, d = 7 deltas, fill}]: every location touched; fill
--              when its stock grew, so queued lines may now fit
--   picks      [{picked, q}]: the pick tally of an order at a location (key index)
--   confirm    [{loc, line, order, lineId, q, res?, cancelled}] (absent, not null, when there is none)
--   cancel     [{loc, line, order, lineId, picked, known?, pg}]: known = the line
--              as PostgreSQL holds it, for when its key is gone: {status, q};
--              pg = PostgreSQL's picks of the order there, by event
--              ({picks = {EVENT = q}, used = {LINE = n}})
--
-- A pick tally is a hash: p:EVENT = what that pick took, u:LINE = the picks a
-- cancelled line accounted for. A cancellation counts the union of these
-- fields and PostgreSQL's, each event and line once, so it is exact whether the
-- picks are committed, in flight, or both.
--
-- Returns two elements per event, in order: 'applied', RESULT; 'duplicate',
-- RESULT when the mark says it ran before (RESULT is what that first run
-- returned: a replay makes the same decisions and alerts); 'conflict', DIGEST
-- when the mark holds another payload's digest; 'refused', WHY when it cannot
-- be applied (see below); for a check, 'ok', ''; 'error', WHY when the script
-- failed on it (nothing of it is in the buckets; the events after it are
-- 'skipped'); 'keys', KEYS_JSON (a JSON list of keys) when its fill would
-- allocate lines whose keys are not in KEYS: nothing of it is written, and the
-- events after it are 'skipped'. RESULT is JSON, every number a string:
--   {locations = [{onHandBefore, onHandAfter, availableBefore, availableAfter}],
--    confirms = [{order, lineId, decision, status, seq?}], cancels = [{order, lineId, q, released, used, was}],
--    fills = [{loc, order, lineId, q, confirmedBy}]}

local now = ARGV[1]
local checking = ARGV[2] == 'check'
-- Never build on a Redis that lost its data (contract, section 4): every
-- decision below reads what this Redis holds.
local sentinel = redis.call('GET', KEYS[1])
if sentinel ~= ARGV[3] then
    return {'stale', sentinel or ''}
end
local FIRST_EVENT = 5
local gate = ARGV[4] ~= '0' and KEYS[tonumber(ARGV[4])]
-- An earlier call of the SKU in this pipeline stopped to ask for keys: the
-- events of this one come after that one's, so none runs now.
local function skipFrom(replies, first)
    for _ = first, #ARGV, 3 do
        replies[#replies + 1] = 'skipped'
        replies[#replies + 1] = ''
    end
    return replies
end
if gate and redis.call('EXISTS', gate) == 1 then
    return skipFrom({}, FIRST_EVENT)
end
local function failed(reply) return type(reply) == 'table' and reply.err ~= nil end
local function refused(why) return {'refused', why} end
local function wrongType(k, wanted)
    return refused('Redis key ' .. k .. ' is a ' .. redis.call('TYPE', k).ok .. ', not ' .. wanted)
end
-- Numbers go to Redis as integer text: a Lua number such as -0 would not parse.
local function n(value) return string.format('%d', value) end

local buckets = {'onHand', 'allocated', 'reserved', 'damaged', 'picked', 'inTransitIn', 'inTransitOut'}

-- Nothing of an event is written before the script knows it can finish it:
-- Redis does not undo a script that fails half way, and a retry would apply
-- the first half again. What another writer (a checkout service, an operator)
-- left in a key an event reads, or a bucket it would carry out of range,
-- refuses the event instead, nothing of it written; the worker dead-letters it
-- and moves on.
-- Buckets stay within +-2^51: Lua numbers are doubles, exact to 2^53, and
-- available (onHand - allocated - reserved) and what one event moves besides
-- its deltas (1,000 lines and 1,000 filled lines of at most 10^9) must be exact too.
local LIMIT = 2251799813685248
local function integer(text) return text and string.match(text, '^%-?%d+$') ~= nil end

-- The keys the call may touch, as a set: built the first time a queue holds a
-- line (not at all in the common case, an empty queue).
local declaredKeys = nil
local function declared(k)
    if not declaredKeys then
        declaredKeys = {}
        for _, name in ipairs(KEYS) do declaredKeys[name] = true end
    end
    return declaredKeys[k] == true
end
local function parseMember(member)
    local order, lineId, q = string.match(member, '^(.*)|(.*)|(%d+)$')
    return order, lineId, tonumber(q)
end
-- Whether key k is absent or a hash (or, for a tally of workers before 0004, a string).
local function hashOrNone(k, orString)
    local kind = redis.call('TYPE', k).ok
    return kind == 'none' or kind == 'hash' or (orString and kind == 'string')
end

-- Each live hash's buckets, read once per call, changed in Lua event after
-- event, and written once at the end (`touched`, in first-touch order).
local stock = {}
local touched = {}
local queuesChecked = {}
-- The buckets the event being applied changes, with what they held before it.
local undo = {}

-- The buckets of a live hash as numbers, or nil and why the event is refused.
local function readStock(live)
    if stock[live] then return stock[live] end
    local values = redis.pcall('HMGET', live, unpack(buckets))
    if failed(values) then return nil, wrongType(live, 'a hash') end
    local read = {}
    for b = 1, 7 do
        local value = values[b] or '0'
        if not integer(value) then
            return nil, refused('Redis key ' .. live .. ' field ' .. buckets[b] .. ' is not an integer')
        end
        value = tonumber(value)
        if math.abs(value) > LIMIT then
            return nil, refused('Redis key ' .. live .. ' field ' .. buckets[b] .. ' is beyond +-2^51')
        end
        read[b] = value
    end
    stock[live] = read
    return read
end

local ON_HAND, ALLOCATED, RESERVED = 1, 2, 3

-- What the event being applied works with, set by applyOne: where its keys
-- start, its writer field, and the buckets of its locations. Helpers that read
-- them are made once per call, not once per event.
local keyBase, writer, at = 0, '', {}
local function key(index) return KEYS[keyBase + index] end
local function available(values) return values[ON_HAND] - values[ALLOCATED] - values[RESERVED] end

-- A key the event writes: it stays until the event is committed (see above).
local function hold(k)
    if redis.call('HSETNX', k, writer, '1') == 1 then
        redis.call('HINCRBY', k, 'writers', 1)
    end
    redis.call('PERSIST', k)
end

-- Tallies of workers before 0004 were plain counters of picks PostgreSQL holds.
local function tally(k)
    if redis.call('TYPE', k).ok == 'string' then redis.call('DEL', k) end
    return k
end

local function settle(line, fields)
    redis.call('HSET', line, unpack(fields))
    hold(line)
end

local function applyOne(base, digest, encodedOps)
    keyBase = base
    local markKey = key(1)
    local mark = redis.pcall('GET', markKey)
    if failed(mark) then return wrongType(markKey, 'a string') end
    if mark and checking then return {'ok', ''} end
    if mark then
        local separator = string.find(mark, '|', 1, true)
        local markDigest = string.sub(mark, 1, separator - 1)
        if markDigest ~= digest then
            return {'conflict', markDigest}
        end
        return {'duplicate', string.sub(mark, separator + 1)}
    end

    local ops = cjson.decode(encodedOps)
    writer = 'w:' .. ops.eventId

    -- The buckets of each location the event touches (shared with the other
    -- events of the call).
    at = {}
    local confirming = ops.confirm ~= nil and #ops.confirm > 0
    local ordering = confirming or (ops.cancel ~= nil and #ops.cancel > 0)
    -- What a fill will find in each queue it reads: the first 1,000 lines once
    -- the event's own cancellations took theirs out (its confirmations add lines
    -- it declares). Read before anything is written, so that an event whose
    -- lines are not all in KEYS writes nothing.
    local windows = {}
    local cancelledAt = {}
    if ordering then
        for _, c in ipairs(ops.cancel or {}) do cancelledAt[c.loc] = (cancelledAt[c.loc] or 0) + 1 end
    end
    for i, location in ipairs(ops.locations) do
        local live = key(location.live)
        local values, refusal = readStock(live)
        if not values then return refusal end
        for b = 1, 7 do
            if math.abs(values[b] + location.d[b]) > LIMIT then
                return refused(buckets[b] .. ' of ' .. live .. ' would go beyond +-2^51')
            end
        end
        at[i] = values
        local queue = key(location.queue)
        if location.fill and not checking then
            windows[i] = redis.pcall('ZRANGE', queue, 0, 999 + (cancelledAt[i] or 0))
            if failed(windows[i]) then return wrongType(queue, 'a sorted set') end
            queuesChecked[queue] = true
        elseif (location.fill or ordering) and not queuesChecked[queue] then
            if failed(redis.pcall('ZCARD', queue)) then return wrongType(queue, 'a sorted set') end
            queuesChecked[queue] = true
        end
    end
    if confirming then
        local seq = redis.pcall('GET', key(ops.seq))
        if failed(seq) then return wrongType(key(ops.seq), 'a string') end
        if seq and not integer(seq) then return refused('Redis key ' .. key(ops.seq) .. ' is not an integer') end
    end
    for _, pick in ipairs(ops.picks or {}) do
        if not hashOrNone(key(pick.picked), true) then return wrongType(key(pick.picked), 'a hash') end
    end
    for _, c in ipairs(ops.confirm or {}) do
        if not hashOrNone(key(c.line)) then return wrongType(key(c.line), 'a hash') end
        if c.res and not hashOrNone(key(c.res)) then return wrongType(key(c.res), 'a reservation hash') end
    end
    for _, c in ipairs(ops.cancel or {}) do
        if not hashOrNone(key(c.line)) then return wrongType(key(c.line), 'a hash') end
        local q = redis.call('HGET', key(c.line), 'q')
        if q and not integer(q) then return refused('Redis key ' .. key(c.line) .. ' field q is not an integer') end
        if not hashOrNone(key(c.picked), true) then return wrongType(key(c.picked), 'a hash') end
    end
    if checking then return {'ok', ''} end
    -- The lines a fill may allocate must be in KEYS. Not one larger than the most
    -- room it can have: what is available once the deltas moved (its own
    -- confirmations only take room, and the room shrinks as it fills; the
    -- event's cancellations give some back, so with them every line counts).
    local missing, asked
    for i, location in ipairs(ops.locations) do
        local window = windows[i]
        if window and #window > 0 then
            missing, asked = missing or {}, asked or {}
            local d = location.d
            local most = cancelledAt[i] and math.huge or available(at[i]) + d[ON_HAND] - d[ALLOCATED] - d[RESERVED]
            for _, member in ipairs(window) do
                local order, lineId, q = parseMember(member)
                if q <= most then
                    local line = ops.lineKeyPrefix .. order .. '|' .. lineId
                    if not declared(line) and not asked[line] then
                        asked[line] = true
                        missing[#missing + 1] = line
                    end
                elseif ops.policy == 'strict' then
                    break
                end
            end
        end
    end
    if missing and #missing > 0 then return {'keys', cjson.encode(missing)} end

    -- From here on the event writes: what its buckets held, for an error half way.
    for i in ipairs(ops.locations) do undo[#undo + 1] = {at[i], {unpack(at[i])}} end

    -- Quantities first, recording what each location looked like before.
    local result = {locations = {}, confirms = {}, cancels = {}, fills = {}}
    local before = {}
    for i, location in ipairs(ops.locations) do
        before[i] = {at[i][ON_HAND], available(at[i])}
        for b = 1, 7 do at[i][b] = at[i][b] + location.d[b] end
    end

    for _, pick in ipairs(ops.picks or {}) do
        local k = tally(key(pick.picked))
        redis.call('HINCRBY', k, 'p:' .. ops.eventId, n(pick.q))
        hold(k)
    end

    -- Each order line is decided once: a line key that exists holds the decision.
    for _, c in ipairs(ops.confirm or {}) do
        local line = key(c.line)
        local existing = redis.call('HMGET', line, 'decision', 'status')
        if existing[1] then
            table.insert(result.confirms, {order = c.order, lineId = c.lineId, decision = existing[1], status = existing[2], seq = '0', existing = '1'})
        else
            local decision, status, seq
            local reservation = c.res and key(c.res)
            if c.cancelled then
                decision, status = 'cancelled', 'cancelled'
            elseif reservation and redis.call('HGET', reservation, 'status') == 'active' then
                at[c.loc][RESERVED] = at[c.loc][RESERVED] - c.q
                at[c.loc][ALLOCATED] = at[c.loc][ALLOCATED] + c.q
                redis.call('HSET', reservation, 'status', 'confirmed', 'orderId', c.order, 'confirmedAt', now)
                decision, status = 'reservation', 'allocated'
            elseif available(at[c.loc]) >= c.q then
                at[c.loc][ALLOCATED] = at[c.loc][ALLOCATED] + c.q
                decision, status = 'available', 'allocated'
            else
                seq = redis.call('INCR', key(ops.seq))
                redis.call('ZADD', key(ops.locations[c.loc].queue), seq, c.order .. '|' .. c.lineId .. '|' .. n(c.q))
                decision, status = 'backordered', 'backordered'
            end
            -- A waiting line is kept until it is filled or dropped (release_keys.lua).
            settle(line, {'decision', decision, 'status', status, 'q', n(c.q), 'confirmedBy', ops.eventId, 'seq', n(seq or 0)})
            table.insert(result.confirms, {order = c.order, lineId = c.lineId, decision = decision, status = status, seq = n(seq or 0)})
        end
    end

    -- A cancellation gives back what is allocated and not yet picked (picks of
    -- the order at that location count, line by line), or drops a waiting line.
    for _, c in ipairs(ops.cancel or {}) do
        local line = key(c.line)
        local status, q = unpack(redis.call('HMGET', line, 'status', 'q'))
        if not status and c.known then
            status, q = c.known.status, c.known.q
        end
        q = tonumber(q) or 0
        local released = 0
        local used = 0
        if status == 'allocated' then
            -- The picks a line accounts for are used up, so that another line (or a
            -- later cancellation) of the order does not count them again.
            local k = tally(key(c.picked))
            local picks, uses = {}, {}
            local fields = redis.call('HGETALL', k)
            for f = 1, #fields, 2 do
                local kind, id = string.sub(fields[f], 1, 2), string.sub(fields[f], 3)
                if kind == 'p:' then picks[id] = tonumber(fields[f + 1]) end
                if kind == 'u:' then uses[id] = tonumber(fields[f + 1]) end
            end
            for id, value in pairs(c.pg.picks) do if not picks[id] then picks[id] = tonumber(value) end end
            for id, value in pairs(c.pg.used) do if not uses[id] then uses[id] = tonumber(value) end end
            local left = 0
            for _, value in pairs(picks) do left = left + value end
            for _, value in pairs(uses) do left = left - value end
            used = math.max(0, math.min(q, left))
            redis.call('HSET', k, 'u:' .. c.lineId, n(used))
            hold(k)
            released = q - used
            at[c.loc][ALLOCATED] = at[c.loc][ALLOCATED] - released
        elseif status == 'backordered' then
            redis.call('ZREM', key(ops.locations[c.loc].queue), c.order .. '|' .. c.lineId .. '|' .. n(q))
        end
        if status == 'allocated' or status == 'backordered' then
            settle(line, {'status', 'cancelled', 'released', n(released), 'cancelledBy', ops.eventId})
            table.insert(result.cancels, {order = c.order, lineId = c.lineId, q = n(q), released = n(released), used = n(used), was = status})
        end
    end

    -- Stock that grew fills the queue, oldest first. The window read above is
    -- the queue as it is now unless the event's own lines changed it.
    for i, location in ipairs(ops.locations) do
        if location.fill then
            local queue = key(location.queue)
            local room = available(at[i])
            local window = ordering and redis.call('ZRANGE', queue, 0, 999) or windows[i]
            for _, member in ipairs(window) do
                local order, lineId, q = parseMember(member)
                if q <= room then
                    local line = ops.lineKeyPrefix .. order .. '|' .. lineId
                    -- Never: every line of the window was found in KEYS above.
                    if not declared(line) then error('apply_event: ' .. line .. ' is not in KEYS') end
                    at[i][ALLOCATED] = at[i][ALLOCATED] + q
                    redis.call('ZREM', queue, member)
                    local confirmedBy = redis.call('HGET', line, 'confirmedBy') or ''
                    settle(line, {'status', 'allocated', 'allocatedBy', ops.eventId})
                    room = room - q
                    table.insert(result.fills, {loc = n(i), order = order, lineId = lineId, q = n(q), confirmedBy = confirmedBy})
                elseif ops.policy == 'strict' then
                    break
                end
            end
        end
    end

    for i, location in ipairs(ops.locations) do
        result.locations[i] = {onHandBefore = n(before[i][1]), onHandAfter = n(at[i][ON_HAND]),
                               availableBefore = n(before[i][2]), availableAfter = n(available(at[i]))}
        local live = key(location.live)
        if not touched[live] then
            touched[live] = true
            touched[#touched + 1] = live
        end
    end
    local encoded = cjson.encode(result)
    redis.call('SET', markKey, digest .. '|' .. encoded)
    return {'applied', encoded}
end

local replies = {}
for k = FIRST_EVENT, #ARGV, 3 do
    undo = {}
    local ok, reply = pcall(applyOne, tonumber(ARGV[k]), ARGV[k + 1], ARGV[k + 2])
    if not ok then
        -- An event that failed half way leaves the buckets as they were before
        -- it: they are written below for the events before it only.
        for _, saved in ipairs(undo) do
            for b = 1, 7 do saved[1][b] = saved[2][b] end
        end
        reply = {'error', tostring(type(reply) == 'table' and reply.err or reply)}
    end
    replies[#replies + 1] = reply[1]
    replies[#replies + 1] = reply[2]
    if reply[1] == 'keys' and gate then redis.call('SET', gate, '1', 'PX', 60000) end
    if reply[1] == 'error' or reply[1] == 'keys' then
        skipFrom(replies, k + 3)
        break
    end
end

-- Every bucket written, so every field exists once a key is touched.
for _, live in ipairs(touched) do
    local values = stock[live]
    local fields = {}
    for b = 1, 7 do
        fields[2 * b - 1], fields[2 * b] = buckets[b], n(values[b])
    end
    redis.call('HSET', live, 'available', n(available(values)), 'updatedAt', now, unpack(fields))
end
return replies
