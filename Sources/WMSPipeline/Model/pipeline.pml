/*
 * pipeline.pml: a model of wms-worker's batch protocol, checked by spin
 * (scripts/check-model; docs/reliability.md, "The protocol model").
 *
 * It describes the code beside it: Pipeline.swift (the loop, settle, commit,
 * retry and rewind, the rebalance hook), CommitLane.swift (batch N made durable
 * on the lane while N+1 is prepared), BatchPreparer.prepare (step 1, the
 * PostgreSQL look-up and the claims, and step 2, the Redis scripts),
 * HotStore.swift with Lua/apply_event.lua and Lua/release_keys.lua (marks,
 * claims, their release, their grace), InventoryStore.write with
 * BatchRecords.keeping (one transaction, events already there skipped),
 * BatchFinisher.publish and OutboxPublisher (pending rows sent, acknowledged,
 * marked published), Pipeline.publishLeftovers, and the crash points of
 * FaultPoints.swift. Change them together: a change to the steps, their order,
 * or what one of them reads, writes or skips is a change here too, and
 * scripts/check-model must still pass. Each step below names the Swift
 * function it stands for.
 *
 * One partition of NOFF offsets carries NEV distinct eventIds: offset o holds
 * eventId o % NEV, so with NOFF 3 and NEV 2 offset 2 is a second delivery of
 * the event at offset 0 (in the same batch, in the batch right behind it while
 * that one is on the commit lane, or in a later one). Event 0 causes an
 * outbound message (an order confirmed: an ALLOCATION), event 1 none (a
 * receipt). Two workers (0 and 1) share the consumer group; the partition is
 * assigned to one of them.
 *
 * Each worker is one process whose loop takes one step at a time of either of
 * its two threads: the pipeline thread (poll, look up and claim, scripts,
 * settle, hand over) and the commit lane (write, release, publish, mark).
 * Every step is atomic (one PostgreSQL transaction or statement, one Lua
 * script, one part of a Redis pipeline, one broker acknowledgement); between
 * any two the worker may be killed (kill -9: its memory and its uncommitted
 * transaction are lost, the restart publishes the outbox's leftovers and
 * resumes from the committed offset), or a step may fail without a crash (a
 * store down, the offsets' commit refused: the batch is rewound, with the one
 * on the lane if that failed too). The group may revoke the partition (the
 * owner settles its lane and commits first) or lose it (the owner, fenced,
 * works on), and an operator may replay from offset 0.
 *
 * Abstracted away: payloads and their digests (one payload per eventId: the
 * claims are kept for what their expiry tells, not for EVENT_ID_CONFLICT; dead
 * letters are left out), SKUs and quantities (an event's effect is a counter
 * per store, its outcome one decision bit that depends on the state the script
 * meets: 0 when it is applied the first time, 1 if it were applied again),
 * order lines and late cancellations, the display cache, time (the grace is an
 * assumption, see GRACE_OVER below; a released key expires at the earliest
 * moment the grace allows, see expire), and several partitions.
 *
 * Properties, each a flag set where it is broken and asserted false:
 *   in every reachable state
 *     redis_applied_twice            an event's effects applied twice in Redis
 *     pg_applied_twice               ... twice in PostgreSQL
 *     offset_committed_before_durable an offset committed while an event below
 *                                    it is not in PostgreSQL, not applied in
 *                                    Redis, or has an outbound message the
 *                                    broker has not acknowledged
 *     message_under_two_ids          an event's outbound message delivered under
 *                                    a second messageId (a duplicate under the
 *                                    same id is allowed: consumers drop it)
 *     mark_dropped_before_pg         a mark or claim expired while its event is
 *                                    not committed in PostgreSQL
 *   at rest (QUIESCENT: no worker has anything to do; checked in every such
 *   state, and in any state where nothing at all can move)
 *     not_caught_up                  the committed offset is not past the last
 *                                    event, or work is left undone
 *     event_lost_or_doubled          an event not applied exactly once in Redis
 *                                    and in PostgreSQL
 *     message_not_delivered          an event's message not in the outbound topic
 *                                    or its outbox row not marked published
 *     redis_pg_disagree              Redis and PostgreSQL hold different outcomes
 *     mark_held_forever              a mark or claim left without expiry: Redis
 *                                    memory would grow with history
 *
 * Switches (-DNAME): the bounds below; PIPELINE=0 (one batch at a time);
 * OLDEST_COVERS_ALL (every batch publishes every pending row, as when the
 * backlog is under 1,000); ZOMBIE_COMMITS (a fenced member's commit is taken:
 * nothing is lost or doubled, the offset may go back); IGNORE_HELD_FOREVER (that property
 * not checked); NO_GRACE_ASSUMPTION; and the mutations BUG_*, each a step left
 * out, reordered or changed, which scripts/check-model requires spin to catch.
 */

/* ---- bounds (override with -D) ---- */
#ifndef NOFF
#define NOFF 3          /* offsets in the partition */
#endif
#ifndef NEV
#define NEV 2           /* distinct eventIds: offset o carries eventId o % NEV */
#endif
#ifndef MAXB
#define MAXB 2          /* most messages one poll returns (1 to MAXB, as ready) */
#endif
#ifndef CRASHES
#define CRASHES 1       /* kill -9 of a worker, at any step */
#endif
#ifndef FAILURES
#define FAILURES 1      /* a step that throws (a store down) without a crash */
#endif
#ifndef REBALANCES
#define REBALANCES 1    /* the partition moves: revoked (settled first) or lost */
#endif
#ifndef REPLAYS
#define REPLAYS 1       /* wms-worker replay --from-beginning */
#endif
#ifndef PIPELINE
#define PIPELINE 1      /* 1: batch N+1 is prepared while N is on the commit lane */
#endif

#define W 2
#define EV(o) ((o) % NEV)
/* Which events cause an outbound message: eventId 0 does (an order confirmed:
 * an ALLOCATION back to the WMS), the others do not (a receipt). */
#ifndef MSG_EVENTS
#define MSG_EVENTS 1
#endif
#define HASMSG(e) ((MSG_EVENTS & BIT(e)) != 0)
/* Which events' scripts write keys besides the mark (order lines, pick
 * tallies): the same ones. Their marks are released by release_keys.lua; the
 * mark of an event that wrote nothing else just gets a PEXPIRE. */
#define HELD_KEYS(e) HASMSG(e)
#define BIT(i) (1 << (i))

/* The messageId of an event's outbound message, as a bit: derived from the
 * eventId and what the script decided (DerivedID, OutboundMessages), so a
 * message made again is made with the same id. BUG_RANDOM_MSGID: an id the
 * worker makes up (a UUID, say): here, the worker's number. */
#ifdef BUG_RANDOM_MSGID
#define MSGID(w, dec) BIT(w)
#else
#define MSGID(w, dec) BIT(dec)
#endif

/* The grace (WMS_REDIS_GRACE, 300 s) is taken to outlast the time between a
 * batch's look-up in PostgreSQL and its scripts (PipelineSettings.redisGrace:
 * "the grace only has to cover a batch of another worker that looked
 * PostgreSQL up before the commit"): a released mark or claim expires only
 * when no worker holds a look-up, made before the event's commit, whose
 * scripts have not run yet. Nothing in the code enforces it.
 * NO_GRACE_ASSUMPTION drops it. */
#ifdef NO_GRACE_ASSUMPTION
#define GRACE_OVER(e) true
#else
#define GRACE_OVER(e) (((window[0] | window[1]) & BIT(e)) == 0)
#endif

/* the pipeline thread (Pipeline.run) */
#define P_IDLE     0    /* at consumer.poll */
#define P_LOOKED   2    /* step 1 done (existingDigests, plan, claim's PTTL); scripts running; fault point after-lookup */
#define P_PREPARED 3    /* every script answered; fault point after-redis */
#define P_FAILED   4    /* prepare threw: retry() settles the lane and rewinds */

/* the commit lane (CommitLane, BatchFinisher.finish) */
#define L_EMPTY    0
#define L_STARTED  1    /* lane.start; fault points after-display, before-postgres-commit */
#define L_WRITTEN  2    /* store.write committed; fault point after-postgres */
#define L_RELEASING 9   /* HotStore.release: its scripts done, its PEXPIRE pipeline not sent */
#define L_EXPIRING 10   /* HotStore.release: the first part of the pipeline run */
#define L_SENDING  4    /* hotStore.release done (fault point after-release), pendingOutbox read; OutboxPublisher.publish sending */
#define L_SENT     5    /* every acknowledgement back; fault point after-publish */
#define L_DONE     6    /* store.markPublished done; fault point after-mark-published */
#define L_FAILED   7    /* finish threw */
#define L_EARLY    8    /* BUG_RELEASE_BEFORE_PG: released, not yet written */

/* what a batch decided for an offset (BatchPreparer.Disposition) */
#define D_NONE 0
#define D_DUP  1        /* .alreadyApplied: PostgreSQL holds it, the lane's batch applies it, or an earlier offset of the batch */
#define D_NEW  2        /* .apply, its script not answered yet */
#define D_A0   3        /* .apply, the script answered decision 0 (applied, or 'duplicate' with the mark's result) */
#define D_A1   4        /* .apply, decision 1 */

/* a Redis mark (inventory:applied:{SKU}:EVENT_ID) or claim (inventory:claim:{EVENT_ID}) */
#define M_NONE  0
#define M_HELD  1       /* written without expiry (apply_event.lua, SET NX) */
#define M_GRACE 2       /* HotStore.release gave it the grace */

/* ---- Kafka ---- */
byte committed;         /* the group's committed offset: the next to read */
byte owner;             /* the worker the partition is assigned to */
bool member[W];         /* the worker holds the partition in the group's current generation:
                         * a commit from one that does not is fenced (ILLEGAL_GENERATION) */
bool lost[W];           /* its partition was lost: the revocation (assignment lost) comes at its next poll */
/* ---- PostgreSQL ---- */
bool pg_has[NEV];       /* inventory_events holds the eventId */
byte pg_applied[NEV];   /* times its ledger rows and levels were written */
byte pg_dec[NEV];       /* the decision PostgreSQL records */
byte rows[NEV];         /* outbox rows of the event, by messageId bit */
byte pub[NEV];          /* those with published_at set */
/* ---- Redis ---- */
byte mark[NEV];         /* inventory:applied:{SKU}:EVENT_ID: M_NONE, M_HELD or M_GRACE */
byte claim[NEV];        /* inventory:claim:{EVENT_ID}: SET NX, no expiry, before the scripts; the same states */
byte mark_dec[NEV];     /* the result the mark stores, returned to a replay */
byte redis_applied[NEV];/* times the script applied its effects */
byte redis_dec[NEV];    /* the decision applied */
/* ---- the outbound topic ---- */
byte delivered[NEV];    /* messageId bits of the event's messages the broker holds (and acknowledged) */

/* ---- each worker's memory, lost in a crash ---- */
byte ps[W];             /* pipeline thread */
byte pos[W];            /* the consumer's read position */
byte lo[W], hi[W];      /* the batch in hand: offsets lo ..< hi */
byte dp[W * NOFF];      /* its dispositions, by offset */
byte unrel[W];          /* events PostgreSQL holds whose claim has no expiry (Claims.unreleased) */
byte window[W];         /* events looked up as new whose scripts have not run (see GRACE_OVER) */
byte ls[W];             /* commit lane */
byte llo[W], lhi[W];    /* the lane's batch */
byte dl[W * NOFF];      /* its dispositions */
byte lunrel[W];         /* its Claims.unreleased, recalled by its release */
byte snap[W * NEV];     /* the outbox rows being published, by event (pendingOutbox) */
byte sent[W];           /* events whose rows were sent */
bool fresh[W];          /* restarted: publishLeftovers first */
#ifdef BUG_START_AFTER_FAILED_SETTLE
bool hasfailed[W];      /* Pipeline.failed: a batch kept to be rewound at the next loop */
byte failedlo[W];
#define NO_FAILED_KEPT(w) (!hasfailed[w])
#else
#define NO_FAILED_KEPT(w) true
#endif

/* ---- the disruptions' budgets ---- */
byte crashes, failures, rebalances, replays;

/* ---- the properties ---- */
bool redis_applied_twice, pg_applied_twice, offset_committed_before_durable, message_under_two_ids,
     mark_dropped_before_pg, not_caught_up, event_lost_or_doubled, message_not_delivered,
     redis_pg_disagree, mark_held_forever;

hidden byte o, o2, e, x, y;    /* scratch, never live between steps */

#define DP(w, i) dp[(w) * NOFF + (i)]
#define DL(w, i) dl[(w) * NOFF + (i)]
#define SNAP(w, i) snap[(w) * NEV + (i)]
#define ASSIGNED(w) (owner == (w) && member[w])
#ifdef BUG_NO_IDLE_SETTLE
/* the lane's batch is committed only when the next batch comes */
#define IDLE_SETTLE(w) (!ASSIGNED(w) || pos[w] < NOFF)
#else
#define IDLE_SETTLE(w) true
#endif
#define LANE_IDLE(w) (ls[w] == L_EMPTY || ls[w] == L_DONE || ls[w] == L_FAILED)

/* x = 1 if the batch on w's lane applies event e: CommitLane.inFlight, its
 * records' eventIds, which the batch being prepared counts as applied. */
inline inflight(w, e) {
    x = 0;
    if
    :: ls[w] != L_EMPTY ->
        for (o2 : llo[w] .. lhi[w] - 1) {
            if
            :: EV(o2) == e && DL(w, o2) >= D_A0 -> x = 1
            :: else
            fi
        }
    :: else
    fi;
    o2 = 0
}

/* A released key (a mark or a claim, given the grace by HotStore.release)
 * expires at the earliest moment the grace allows: at once, unless a worker
 * holds a look-up made before the event's commit whose scripts have not run
 * (GRACE_OVER). Nothing else tells a released key from an expired one (a
 * script meets it only through such a look-up; PTTL only tells "no expiry"
 * apart), so the earliest moment is the worst case, and the model does not
 * have to interleave expiries with everything else. */
inline expire() {
    for (e : 0 .. NEV - 1) {
        if
        :: (mark[e] == M_GRACE || claim[e] == M_GRACE) && GRACE_OVER(e) ->
            if
            :: !pg_has[e] -> mark_dropped_before_pg = 1
            :: else
            fi;
            if
            :: mark[e] == M_GRACE -> mark[e] = M_NONE; mark_dec[e] = 0
            :: else
            fi;
            if
            :: claim[e] == M_GRACE -> claim[e] = M_NONE
            :: else
            fi
        :: else
        fi
    }
    e = 0;
    assert(!mark_dropped_before_pg)
}

/* kill -9: the process's memory goes, and with it the uncommitted transaction
 * (which, being atomic here, either committed in its step or never). The
 * restart rejoins the group (its next poll is a new assignment) after
 * publishLeftovers. */
inline crash(w) {
    ps[w] = P_IDLE; pos[w] = 0; member[w] = 0; lost[w] = 0; lo[w] = 0; hi[w] = 0; unrel[w] = 0; window[w] = 0;
    ls[w] = L_EMPTY; llo[w] = 0; lhi[w] = 0; lunrel[w] = 0; sent[w] = 0; fresh[w] = 1;
    for (o : 0 .. NOFF - 1) { DP(w, o) = D_NONE; DL(w, o) = D_NONE }
    for (o : 0 .. NEV - 1) { SNAP(w, o) = 0 }
    o = 0
#ifdef BUG_START_AFTER_FAILED_SETTLE
    ; hasfailed[w] = 0; failedlo[w] = 0
#endif
}

inline clear_lane(w) {
    for (o : llo[w] .. lhi[w] - 1) { DL(w, o) = D_NONE }
    o = 0; ls[w] = L_EMPTY; llo[w] = 0; lhi[w] = 0; lunrel[w] = 0
}

inline clear_batch(w) {
    for (o : lo[w] .. hi[w] - 1) { DP(w, o) = D_NONE }
    o = 0; lo[w] = 0; hi[w] = 0; unrel[w] = 0; window[w] = 0; ps[w] = P_IDLE;
    expire()
}

/* Pipeline.settle, the batch on the lane finished: Pipeline.commit of its
 * offsets. The check: every event below the offset is durable. */
inline commit(w) {
    for (o : 0 .. lhi[w] - 1) {
        e = EV(o);
        if
        :: !(pg_has[e] && redis_applied[e] > 0 && (!HASMSG(e) || (rows[e] != 0 && (rows[e] & delivered[e]) == rows[e]))) ->
            offset_committed_before_durable = 1
        :: else
        fi
    }
    o = 0; e = 0;
    assert(!offset_committed_before_durable);
    committed = lhi[w];
    clear_lane(w)
}

/* Pipeline.settle and, when it throws, Pipeline.retry: a lane that failed, or
 * whose offsets could not be committed (after commit's own retries, or fenced:
 * the partition moved), is rewound with the batch in hand; rewind skips a
 * partition no longer assigned (KafkaConsumer.rewind). */
inline settle_failed(w) {
    if
    :: ASSIGNED(w) -> pos[w] = llo[w]
    :: else
    fi;
    clear_lane(w);
    clear_batch(w)
}

inline settle(w) {
    if
    :: ls[w] == L_DONE && ASSIGNED(w) -> commit(w)
    :: ls[w] == L_DONE && !ASSIGNED(w) ->
#ifdef ZOMBIE_COMMITS
        /* the broker takes a fenced member's commit all the same */
        commit(w)
#else
        settle_failed(w)
#endif
    :: ls[w] == L_FAILED -> settle_failed(w)
    :: ls[w] == L_EMPTY
    fi
}

/* lane.start(prepared): the batch goes on the commit lane. */
inline start(w) {
    for (o : lo[w] .. hi[w] - 1) { DL(w, o) = DP(w, o); DP(w, o) = D_NONE }
    o = 0; llo[w] = lo[w]; lhi[w] = hi[w]; lunrel[w] = unrel[w]; ls[w] = L_STARTED;
    lo[w] = 0; hi[w] = 0; unrel[w] = 0; ps[w] = P_IDLE
}

/* InventoryStore.write: one transaction. Events are inserted ON CONFLICT DO
 * NOTHING, and only those it inserted write their ledger rows, levels and
 * outbox rows (BatchRecords.keeping): another worker that wrote the event
 * first wrote the same ones. */
inline pg_write(w) {
    y = 0;
#ifdef BUG_KEEPING_BY_BATCH
    /* keeping(insertedEvents:) drops the records of every event of the batch
     * once one of them was skipped */
    for (o : llo[w] .. lhi[w] - 1) {
        if
        :: DL(w, o) >= D_A0 && pg_has[EV(o)] -> y = 1
        :: else
        fi
    }
#endif
    for (o : llo[w] .. lhi[w] - 1) {
        if
        :: DL(w, o) >= D_A0 ->
            e = EV(o); x = DL(w, o) - D_A0;
            if
            :: !pg_has[e] ->
                pg_has[e] = 1;
                if
                :: !y ->
                    pg_applied[e]++; pg_dec[e] = x;
                    if
                    :: HASMSG(e) -> rows[e] = rows[e] | MSGID(w, x)
                    :: else
                    fi
                :: else
                fi
            :: else ->
#ifdef BUG_NO_PG_SKIP
                pg_applied[e]++;
#endif
#ifdef BUG_OUTBOX_OF_SKIPPED
                if
                :: HASMSG(e) -> rows[e] = rows[e] | MSGID(w, x)
                :: else
                fi;
#endif
                skip
            fi;
            if
            :: pg_applied[e] > 1 -> pg_applied_twice = 1
            :: else
            fi
        :: else
        fi
    }
    o = 0; e = 0; x = 0; y = 0;
    assert(!pg_applied_twice)
}

/* HotStore.release, once the batch is committed in PostgreSQL. First round
 * trip: release_keys.lua for each mark whose event wrote other keys (order
 * lines, pick tallies), and for the marks of the events recalled
 * (Claims.unreleased: committed by a run that died before its release). */
inline release_scripts(w) {
    for (o : llo[w] .. lhi[w] - 1) {
        e = EV(o);
        if
        :: DL(w, o) >= D_A0 && HELD_KEYS(e) && mark[e] != M_NONE -> mark[e] = M_GRACE
        :: else
        fi
    }
#ifndef BUG_NO_RECALL
    for (e : 0 .. NEV - 1) {
        if
        :: (lunrel[w] & BIT(e)) && mark[e] != M_NONE -> mark[e] = M_GRACE
        :: else
        fi
    }
#endif
    o = 0; e = 0
}

/* Second round trip, one pipeline of PEXPIREs: the claims (eventKeys: the
 * batch's applied events and those recalled), then the marks of the events
 * that wrote nothing else. Redis runs a pipeline's commands in order, and
 * RedisConnection.pipeline sends one in chunks of 128, reading each chunk's
 * replies before it sends the one after next: a kill, or a connection that
 * drops, between two chunks leaves a prefix run. So the model takes the
 * pipeline in two steps. The marks go first: a prefix then leaves claims
 * without expiry, which the next run finds (Claims.unreleased) and releases
 * with their marks. BUG_CLAIMS_BEFORE_MARKS is the order the code had until
 * this model found it: a prefix of claims only was a leak, the batch running
 * again, finding its events in PostgreSQL and their claims with an expiry, and
 * never releasing the marks the prefix did not reach. */
inline expire_claims(w) {
    for (o : llo[w] .. lhi[w] - 1) {
        e = EV(o);
        if
        :: DL(w, o) >= D_A0 && claim[e] != M_NONE -> claim[e] = M_GRACE
        :: else
        fi
    }
#ifndef BUG_NO_RECALL
    for (e : 0 .. NEV - 1) {
        if
        :: (lunrel[w] & BIT(e)) && claim[e] != M_NONE -> claim[e] = M_GRACE
        :: else
        fi
    }
#endif
    o = 0; e = 0
}

inline expire_marks(w) {
    for (o : llo[w] .. lhi[w] - 1) {
        e = EV(o);
        if
        :: DL(w, o) >= D_A0 && !HELD_KEYS(e) && mark[e] != M_NONE -> mark[e] = M_GRACE
        :: else
        fi
    }
    o = 0; e = 0
}

#ifdef BUG_CLAIMS_BEFORE_MARKS
#define EXPIRE_FIRST(w) expire_claims(w)
#define EXPIRE_THEN(w) expire_marks(w)
#else
#define EXPIRE_FIRST(w) expire_marks(w)
#define EXPIRE_THEN(w) expire_claims(w)
#endif

inline release(w) {
    release_scripts(w); EXPIRE_FIRST(w); EXPIRE_THEN(w); lunrel[w] = 0
}

/* store.pendingOutbox: the unpublished rows of the batch's events and of its
 * duplicates (rows a crashed run left), plus the 1,000 oldest unpublished
 * rows whatever caused them. The model takes the worst case, a backlog of more
 * than 1,000 other rows, unless OLDEST_COVERS_ALL. x = 1 if any. */
inline snapshot_batch(w) {
    x = 0;
    for (o : llo[w] .. lhi[w] - 1) {
        e = EV(o);
        if
#ifdef BUG_PUBLISH_ONLY_APPLIED
        :: DL(w, o) >= D_A0 && (rows[e] & ~pub[e]) != 0 ->
#else
        :: DL(w, o) != D_NONE && (rows[e] & ~pub[e]) != 0 ->
#endif
            SNAP(w, e) = rows[e] & ~pub[e]; x = 1
        :: else
        fi
    }
#ifdef OLDEST_COVERS_ALL
    for (e : 0 .. NEV - 1) {
        if
        :: (rows[e] & ~pub[e]) != 0 -> SNAP(w, e) = rows[e] & ~pub[e]; x = 1
        :: else
        fi
    }
#endif
    o = 0; e = 0
}

inline pending(w) {
    snapshot_batch(w);
    if
    :: x -> ls[w] = L_SENDING
    :: else -> ls[w] = L_DONE
    fi;
    x = 0
}

/* store.allPendingOutbox, for publishLeftovers at a restart. */
inline snapshot_all(w) {
    x = 0;
    for (e : 0 .. NEV - 1) {
        if
        :: (rows[e] & ~pub[e]) != 0 -> SNAP(w, e) = rows[e] & ~pub[e]; x = 1
        :: else
        fi
    }
    e = 0
}

/* apply_event.lua for the batch's first offset still waiting for its script,
 * offset x: a mark there answers 'duplicate' with the result it stores;
 * otherwise the effects are applied and the mark written, without expiry. */
inline script(w) {
    e = EV(x);
    if
#ifndef BUG_NO_REDIS_DEDUPE
    :: mark[e] != M_NONE ->
#ifdef BUG_NO_STORED_RESULT
        /* decided again against today's state */
        DP(w, x) = D_A0 + (redis_applied[e] > 0 -> 1 : 0)
#else
        DP(w, x) = D_A0 + mark_dec[e]
#endif
#endif
    :: else ->
        redis_dec[e] = (redis_applied[e] > 0 -> 1 : 0);
        redis_applied[e]++;
        mark[e] = M_HELD; mark_dec[e] = redis_dec[e];
        DP(w, x) = D_A0 + redis_dec[e];
        if
        :: redis_applied[e] > 1 -> redis_applied_twice = 1
        :: else
        fi
    fi;
    e = 0; x = 0;
    assert(!redis_applied_twice)
}

/* One step of the broker: the rows of the first event of the snapshot not sent
 * yet are delivered (OutboxPublisher.publish, producer.send). */
inline send_one(w) {
    x = NEV;
    for (e : 0 .. NEV - 1) {
        if
        :: x == NEV && SNAP(w, e) != 0 && (sent[w] & BIT(e)) == 0 -> x = e
        :: else
        fi
    }
    e = 0;
    /* ids are bits 1 and 2: both is two ids */
    if
    :: (delivered[x] | SNAP(w, x)) == 3 -> message_under_two_ids = 1
    :: else
    fi;
    assert(!message_under_two_ids);
    delivered[x] = delivered[x] | SNAP(w, x);
    sent[w] = sent[w] | BIT(x);
    x = 0
}

/* x = 1 if every row of the snapshot was sent */
inline all_sent(w) {
    x = 1;
    for (e : 0 .. NEV - 1) {
        if
        :: SNAP(w, e) != 0 && (sent[w] & BIT(e)) == 0 -> x = 0
        :: else
        fi
    }
    e = 0
}

/* store.markPublished */
inline mark_published(w) {
    for (e : 0 .. NEV - 1) { pub[e] = pub[e] | SNAP(w, e); SNAP(w, e) = 0 }
    e = 0; sent[w] = 0
}

/* Step 1 of BatchPreparer.prepare: existingDigests (which eventIds
 * PostgreSQL holds), plan (an eventId PostgreSQL holds, the lane's batch
 * applies, or an earlier offset of the batch has is a duplicate), and
 * HotStore.claim: the claims of the others, and the claims' PTTL of the events
 * PostgreSQL holds (Claims.unreleased: keys a run that died after its commit
 * never released). */
inline lookup(w) {
    for (o : lo[w] .. hi[w] - 1) {
        e = EV(o);
        inflight(w, e);
        if
#ifndef BUG_NO_LOOKUP
        :: pg_has[e] ->
            DP(w, o) = D_DUP;
            if
            :: claim[e] == M_HELD -> unrel[w] = unrel[w] | BIT(e)    /* PTTL -1 */
            :: else
            fi
        :: !pg_has[e] && x -> DP(w, o) = D_DUP
#else
        :: x -> DP(w, o) = D_DUP
#endif
        :: else ->
            /* HotStore.claim: SET NX, in the same step (a claim only makes the
             * first payload stand, and payloads are not modelled) */
            if
            :: claim[e] == M_NONE -> claim[e] = M_HELD
            :: else
            fi;
            x = 0;
            for (o2 : lo[w] .. o - 1) {
                if
                :: EV(o2) == e -> x = 1
                :: else
                fi
            }
            o2 = 0;
            if
            :: x -> DP(w, o) = D_DUP
            :: else -> DP(w, o) = D_NEW; window[w] = window[w] | BIT(e)
            fi
        fi
    }
    o = 0; e = 0; x = 0
}

proctype Worker(byte w) {
end:
    do
    /* ---- the pipeline thread (Pipeline.run) ---- */

    /* Pipeline.publishLeftovers: after a (re)start, every unpublished outbox row */
    :: d_step { fresh[w] && ls[w] == L_EMPTY ->
        snapshot_all(w);
        if
        :: x -> ls[w] = L_SENDING
        :: else -> fresh[w] = 0
        fi;
        x = 0 }

    /* consumer.poll, assigned the partition: reads on from the committed offset */
    :: d_step { !fresh[w] && ps[w] == P_IDLE && owner == w && !member[w] && !lost[w] ->
        member[w] = 1; pos[w] = committed }

    /* consumer.poll, the partition lost: beforeRevoke settles the lane, its commit fenced
     * (the revocation comes before any new assignment) */
    :: d_step { lost[w] && ps[w] == P_IDLE && LANE_IDLE(w) ->
        settle(w); lost[w] = 0 }

    /* consumer.poll, then BatchPreparer.prepare step 1: look-up and claims
     * (1 to MAXB messages from the read position; polling is invisible to
     * the others, so it is one step with the look-up) */
    :: atomic { !fresh[w] && ps[w] == P_IDLE && ASSIGNED(w) && pos[w] < NOFF && (PIPELINE || ls[w] == L_EMPTY) && NO_FAILED_KEPT(w) ->
        lo[w] = pos[w];
        if
        :: hi[w] = pos[w] + 1
        :: MAXB >= 2 && pos[w] + 2 <= NOFF -> hi[w] = pos[w] + 2
        :: MAXB >= 3 && pos[w] + 3 <= NOFF -> hi[w] = pos[w] + 3
        fi;
        pos[w] = hi[w];
        lookup(w);
        ps[w] = P_LOOKED }

    /* Pipeline.settle on an empty poll (caught up, or the partition gone) */
    :: d_step { !fresh[w] && ps[w] == P_IDLE && (ls[w] == L_DONE || ls[w] == L_FAILED) && NO_FAILED_KEPT(w) && IDLE_SETTLE(w) ->
        settle(w) }

#ifdef BUG_START_AFTER_FAILED_SETTLE
    /* BUG: the next loop's retry(rewinding: failed + batch), whose settle commits the lane's batch */
    :: d_step { hasfailed[w] && ps[w] == P_IDLE && LANE_IDLE(w) ->
        settle(w);
        if
        :: ASSIGNED(w) -> pos[w] = failedlo[w]
        :: else
        fi;
        hasfailed[w] = 0; failedlo[w] = 0 }
#endif

    /* consumer.poll, a rebalance: beforeRevoke settles the lane and commits, then the partition moves */
    :: d_step { rebalances < REBALANCES && !fresh[w] && ps[w] == P_IDLE && ASSIGNED(w) && LANE_IDLE(w) ->
        rebalances++;
        settle(w);
        member[w] = 0; pos[w] = 0; owner = 1 - w }

    /* HotStore.apply: one apply_event.lua call (step 2), the next event of the batch
     * (calls are atomic, a pipeline of them is not: a crash may come between
     * two); after the last, the batch is prepared (fault point after-redis) */
    :: d_step { ps[w] == P_LOOKED ->
        x = NOFF;
        for (o : lo[w] .. hi[w] - 1) {
            if
            :: x == NOFF && DP(w, o) == D_NEW -> x = o
            :: else
            fi
        }
        o = 0;
        if
        :: x < NOFF -> script(w)
        :: else
        fi;
        x = NOFF;
        for (o : lo[w] .. hi[w] - 1) {
            if
            :: DP(w, o) == D_NEW -> x = o
            :: else
            fi
        }
        o = 0;
        if
        :: x == NOFF -> window[w] = 0; ps[w] = P_PREPARED; expire()
        :: else
        fi;
        x = 0 }

    /* BatchPreparer.prepare throws (a store down) */
    :: d_step { failures < FAILURES && ps[w] == P_LOOKED ->
        failures++; window[w] = 0; ps[w] = P_FAILED; expire() }

    /* Pipeline.retry: settle (waits for the lane), rewind to the batch in hand,
     * or to the lane's batch if that one failed too */
    :: d_step { ps[w] == P_FAILED && LANE_IDLE(w) ->
        x = lo[w];
        settle(w);
        if
        :: ps[w] == P_FAILED && ASSIGNED(w) -> pos[w] = x
        :: else
        fi;
        x = 0;
        clear_batch(w) }

    /* CommitLane.start: the prepared batch goes on the empty lane */
    :: d_step { ps[w] == P_PREPARED && ls[w] == L_EMPTY -> start(w) }
    /* Pipeline.settle then CommitLane.start: the lane's batch committed, the prepared one on the lane */
    :: d_step { ps[w] == P_PREPARED && ls[w] == L_DONE && ASSIGNED(w) -> commit(w); start(w) }
#ifdef BUG_START_AFTER_FAILED_SETTLE
    /* BUG: `try? settle()`: the failed batch kept for the next loop, the prepared one started */
    :: d_step { ps[w] == P_PREPARED && ((ls[w] == L_DONE && !ASSIGNED(w)) || ls[w] == L_FAILED) ->
        hasfailed[w] = 1; failedlo[w] = llo[w]; clear_lane(w); start(w) }
#else
    /* Pipeline.settle throws, retry: both batches rewound (a partition no longer assigned is not) */
    :: d_step { ps[w] == P_PREPARED && ((ls[w] == L_DONE && !ASSIGNED(w)) || ls[w] == L_FAILED) ->
        settle_failed(w) }
#endif

    /* ---- the commit lane (CommitLane, BatchFinisher.finish) ---- */
#ifdef BUG_RELEASE_BEFORE_PG
    /* BUG: HotStore.release before the transaction */
    :: d_step { ls[w] == L_STARTED -> release(w); expire(); ls[w] = L_EARLY }
    /* InventoryStore.write, after the release */
    :: d_step { ls[w] == L_EARLY -> pg_write(w); pending(w) }
#else
    /* InventoryStore.write: the batch's one transaction (display cache before it) */
    :: d_step { ls[w] == L_STARTED -> pg_write(w); ls[w] = L_WRITTEN }
    /* HotStore.release, its release_keys.lua calls */
    :: d_step { ls[w] == L_WRITTEN -> release_scripts(w); expire(); ls[w] = L_RELEASING }
    /* HotStore.release, its PEXPIRE pipeline: the first part */
    :: d_step { ls[w] == L_RELEASING -> EXPIRE_FIRST(w); expire(); ls[w] = L_EXPIRING }
    /* HotStore.release, its PEXPIRE pipeline: the rest; then store.pendingOutbox */
    :: d_step { ls[w] == L_EXPIRING -> EXPIRE_THEN(w); expire(); lunrel[w] = 0; pending(w) }
#endif
#ifdef BUG_COMMIT_BEFORE_PUBLISH
    /* BUG: the batch counts as finished once PostgreSQL has it; its messages
     * are left to later batches and to publishLeftovers */
    :: d_step { ls[w] == L_SENDING && !fresh[w] ->
        for (e : 0 .. NEV - 1) { SNAP(w, e) = 0 }
        e = 0; ls[w] = L_DONE }
#endif
    /* OutboxPublisher.publish: producer.send of an event's rows (all sent: every ack back) */
    :: d_step { ls[w] == L_SENDING ->
        send_one(w);
        all_sent(w);
        if
        :: x -> ls[w] = L_SENT
        :: else
        fi;
        x = 0 }
    /* InventoryStore.markPublished (fault point after-mark-published) */
    :: d_step { ls[w] == L_SENT ->
        mark_published(w);
        if
        :: fresh[w] -> fresh[w] = 0; ls[w] = L_EMPTY
        :: else -> ls[w] = L_DONE
        fi }
    /* BatchFinisher.finish throws (a store or the broker down), or the offsets' commit
     * is refused after commit's own retries: the lane's batch settles as failed */
    :: d_step { failures < FAILURES && !fresh[w] && ls[w] != L_EMPTY && ls[w] != L_FAILED ->
        failures++;
        for (e : 0 .. NEV - 1) { SNAP(w, e) = 0 }
        e = 0; sent[w] = 0; ls[w] = L_FAILED }

    /* kill -9 (at any step: between any two of the others) */
    :: d_step { crashes < CRASHES -> crashes++; crash(w); expire() }
    od
}

/* The rest of the world: the group losing a member's partition without a
 * revocation (session timeout, a fenced zombie that works on), an operator's
 * replay (`replay` refuses while another member is active: the workers stop,
 * the offsets go back to 0, they start again). */
active proctype Group() {
end:
    do
    /* the group loses the owner's partition (session timeout): it goes to the other worker */
    :: d_step { rebalances < REBALANCES -> rebalances++; member[owner] = 0; lost[owner] = 1; pos[owner] = 0; owner = 1 - owner }
    /* wms-worker replay --from-beginning: the workers stopped, the offset back to 0 */
    :: d_step { replays < REPLAYS -> replays++; crash(0); crash(1); committed = 0; expire() }
    od
}

/* At rest: no worker has anything in hand, on its lane or to publish, and
 * the partition's owner has read to the end. Nothing moves from here but a
 * disruption (whose budget may be left: the check is made at every such
 * state). And if nothing at all can move, the system must be at rest. */
#define AT_REST(w) (ps[w] == P_IDLE && ls[w] == L_EMPTY && !fresh[w] && NO_FAILED_KEPT(w))
#define QUIESCENT (AT_REST(0) && AT_REST(1) && member[owner] && pos[owner] == NOFF)

inline end_checks() {
    if
#ifdef ZOMBIE_COMMITS
    /* the committed offset may go back: a replay of a few messages */
    :: !QUIESCENT -> not_caught_up = 1
#else
    :: committed != NOFF || !QUIESCENT -> not_caught_up = 1
#endif
    :: else
    fi;
    for (e : 0 .. NEV - 1) {
        if
        :: redis_applied[e] != 1 || pg_applied[e] != 1 -> event_lost_or_doubled = 1
        :: else
        fi;
        if
        :: HASMSG(e) && (rows[e] == 0 || pub[e] != rows[e] || delivered[e] != rows[e]) -> message_not_delivered = 1
        :: !HASMSG(e) && rows[e] != 0 -> message_not_delivered = 1
        :: else
        fi;
        if
        :: pg_dec[e] != redis_dec[e] -> redis_pg_disagree = 1
        :: else
        fi;
#ifndef IGNORE_HELD_FOREVER
        if
        :: mark[e] == M_HELD || claim[e] == M_HELD -> mark_held_forever = 1
        :: else
        fi
#endif
    }
    e = 0;
    assert(!not_caught_up);
    assert(!event_lost_or_doubled);
    assert(!message_not_delivered);
    assert(!redis_pg_disagree);
    assert(!mark_held_forever)
}

active proctype Quiescence() {
end:
    do
    /* at rest: the end checks */
    :: d_step { QUIESCENT -> end_checks() }
    /* nothing can move: the end checks (it must be at rest) */
    :: atomic { timeout -> end_checks() }
    od
}

init {
    atomic {
        run Worker(0); run Worker(1)
    }
}
