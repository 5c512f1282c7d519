-- A new round in one round trip, and fewer index entries per round.
--
-- hearth_play_round does, in one call (one autocommit transaction), what play_round did in
-- four round trips (BEGIN; the locking SELECT; the writes; COMMIT): it locks the wallet and the
-- seed row, replays an Idempotency-Key already used, refuses a second open round of the game and
-- an unaffordable bet, and then writes the round, its ledger lines, the balance, the next nonce
-- and the key. The rules live in the application, so it draws first: the outcomes for the
-- nonces p_first_nonce, p_first_nonce + 1, ... with the seeds it expects (more than one when
-- other rounds of the same player are in flight, so that whichever order they take the lock in,
-- each finds its outcome). The function uses the outcome for the nonce it finds under the lock;
-- when there is none (other seeds, or a nonce outside the range) it writes nothing and returns
-- the current draw inputs, and the application draws again. Each statement below runs with a
-- fresh snapshot (READ COMMITTED), so everything read after the lock sees every transaction
-- that held it before.
--
-- Order matters for the write volume: the rows that reference the wallet are inserted while the
-- wallet row is still the version locked FOR UPDATE here, so their foreign-key checks find it
-- already locked and write nothing; the wallet is updated last.
CREATE FUNCTION hearth_play_round(
    p_user uuid,
    p_round uuid,
    p_game text,
    p_bet bigint,
    -- the draw inputs the outcomes were drawn from, and the nonce of the first outcome
    p_server_seed_hash text,
    p_client_seed text,
    p_first_nonce bigint,
    -- the outcomes, one element per nonce; the JSON as text, so that only the one used is
    -- parsed
    p_wins bigint[],
    p_statuses text[],
    p_details text[],
    p_states text[],
    -- the Idempotency-Key and its request fingerprint, or NULL
    p_key text,
    p_fingerprint text,
    -- ok | not_found | replay | open | insufficient | overflow | stale
    OUT outcome text,
    -- ok: the balance after the round; insufficient, overflow: the balance found
    OUT balance_after bigint,
    OUT played_at timestamptz,
    -- ok: the nonce played
    OUT nonce_played bigint,
    -- replay: the stored fingerprint and answer
    OUT stored_fingerprint text,
    OUT stored_response jsonb,
    -- every outcome but ok: the current draw inputs
    OUT current_server_seed text,
    OUT current_server_seed_hash text,
    OUT current_client_seed text,
    OUT current_nonce bigint
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_balance bigint;
    v_after_bet bigint;
    v_at integer;
    v_win bigint;
    v_detail jsonb;
BEGIN
    played_at := now();
    -- Without the lock first: when the nonce has already moved past the outcomes drawn (same
    -- seeds, and a nonce never goes back for the same seeds), say so without locking, which
    -- would cost a transaction ID, a commit and a turn in the lock queue.
    SELECT f.server_seed, f.server_seed_hash, f.client_seed, f.nonce
      INTO current_server_seed, current_server_seed_hash, current_client_seed, current_nonce
      FROM fairness_seeds f WHERE f.user_id = p_user;
    IF FOUND AND current_server_seed_hash = p_server_seed_hash
       AND current_client_seed = p_client_seed
       AND current_nonce >= p_first_nonce + cardinality(p_wins) THEN
        outcome := 'stale';
        RETURN;
    END IF;
    SELECT w.balance, f.server_seed, f.server_seed_hash, f.client_seed, f.nonce
      INTO v_balance, current_server_seed, current_server_seed_hash, current_client_seed,
           current_nonce
      FROM wallets w JOIN fairness_seeds f ON f.user_id = w.user_id
     WHERE w.user_id = p_user
       FOR UPDATE OF w, f;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT k.fingerprint, k.response INTO stored_fingerprint, stored_response
          FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_key;
        IF FOUND THEN
            outcome := 'replay';
            RETURN;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM game_rounds r
                WHERE r.user_id = p_user AND r.game = p_game AND r.status = 'open') THEN
        outcome := 'open';
        RETURN;
    END IF;
    balance_after := v_balance;
    IF v_balance < p_bet THEN
        outcome := 'insufficient';
        RETURN;
    END IF;
    v_at := current_nonce - p_first_nonce + 1;
    IF current_server_seed_hash <> p_server_seed_hash OR current_client_seed <> p_client_seed
       OR v_at < 1 OR v_at > cardinality(p_wins) THEN
        outcome := 'stale';
        RETURN;
    END IF;
    v_win := p_wins[v_at];
    v_after_bet := v_balance - p_bet;
    IF v_win > 9223372036854775807 - v_after_bet THEN
        outcome := 'overflow';
        RETURN;
    END IF;
    balance_after := v_after_bet + v_win;
    nonce_played := current_nonce;
    v_detail := p_details[v_at]::jsonb;

    INSERT INTO game_rounds (id, user_id, game, bet, win, status, detail, server_seed_hash,
                             client_seed, nonce, created_at, updated_at, state)
    VALUES (p_round, p_user, p_game, p_bet, v_win, p_statuses[v_at], v_detail,
            current_server_seed_hash, current_client_seed, current_nonce, played_at, played_at,
            p_states[v_at]::jsonb);
    -- Ledger ids follow insertion order, so the win always comes after its bet.
    INSERT INTO ledger_entries (user_id, kind, amount, balance_before, balance_after, game,
                                round_id, description, status, created_at)
    VALUES (p_user, 'bet', -p_bet, v_balance, v_after_bet, p_game, p_round, p_game || ' bet',
            'settled', played_at);
    IF v_win <> 0 THEN
        INSERT INTO ledger_entries (user_id, kind, amount, balance_before, balance_after, game,
                                    round_id, description, status, created_at)
        VALUES (p_user, 'win', v_win, v_after_bet, balance_after, p_game, p_round,
                p_game || ' win', 'settled', played_at);
    END IF;
    IF p_key IS NOT NULL THEN
        -- The answer, as the application serialises it (SettledRound).
        INSERT INTO idempotency_keys (user_id, key, fingerprint, response, round_id, created_at)
        VALUES (p_user, p_key, p_fingerprint,
                jsonb_build_object(
                    'round_id', p_round, 'status', p_statuses[v_at], 'game', p_game,
                    'bet', p_bet, 'win', v_win, 'balance', balance_after,
                    'detail', v_detail, 'server_seed_hash', current_server_seed_hash,
                    'client_seed', current_client_seed, 'nonce', current_nonce,
                    'created_at', to_char(played_at AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
                p_round, played_at);
    END IF;
    UPDATE wallets SET balance = balance_after, updated_at = played_at WHERE user_id = p_user;
    UPDATE fairness_seeds SET nonce = nonce + 1 WHERE user_id = p_user;
    outcome := 'ok';
    current_server_seed := NULL;
    RETURN;
END;
$$;

-- Leaderboards read settled rounds by time window. Rounds are appended in time order, so a BRIN
-- index answers the window at a fraction of a B-tree's cost per insert (an insert into a range
-- not yet summarised writes nothing); the B-tree it replaces added an entry to every round.
DROP INDEX game_rounds_settled_win_idx;
CREATE INDEX game_rounds_created_brin ON game_rounds USING brin (created_at)
    WITH (autosummarize = on);

-- Filtering history by kind: bets and wins are most of any player's history, so the
-- (user_id, id) index filtered by kind finds a page of them quickly; only the rare kinds
-- (bonus, deposit, refund, adjustment) need their own index, which bets and wins never enter.
DROP INDEX ledger_entries_user_kind_idx;
CREATE INDEX ledger_entries_user_rare_kind_idx ON ledger_entries (user_id, kind, id DESC)
    WHERE kind NOT IN ('bet', 'win');
