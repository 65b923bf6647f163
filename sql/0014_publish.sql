-- 0014: publishing (issue 18): a finished product's files copied from staging (the
-- products directory) to the archive, each exactly once, with retries.
--
-- One row per file, keyed by its staging path. Its life: staged -> publishing (claimed by
-- one publisher: the row lock of FOR UPDATE SKIP LOCKED, then the status and the claim's
-- owner and time, so that a publisher that died mid-copy is taken over once its claim is
-- stale) -> published, or back to staged with the error and a next attempt after a
-- backoff, or failed after max_attempts (at once for a path refused). The file system
-- does the rest (core/publish.h): copied under a temporary name, synced, renamed into the
-- archive; the staged file stays for retention to remove, as the products rows name it.

CREATE TABLE products.publications (
    src_path        text PRIMARY KEY,
    dest_path       text NOT NULL,
    kind            text NOT NULL,
    group_id        text,
    status          text NOT NULL DEFAULT 'staged'
                    CHECK (status IN ('staged', 'publishing', 'published', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claimed_at      timestamptz,
    last_error      text,
    bytes           bigint,
    published_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'publishing') = (claimed_by IS NOT NULL))
);
CREATE INDEX publications_due_idx ON products.publications (next_attempt_at)
    WHERE status = 'staged';
CREATE INDEX publications_group_idx ON products.publications (group_id);

-- Stages a file (again: nothing changes for a file staged, publishing or published; a
-- failed one is staged afresh, its attempts reset). Returns the row.
CREATE FUNCTION products.stage_publication(p_src text, p_dest text, p_kind text,
                                           p_group text DEFAULT NULL,
                                           p_max_attempts integer DEFAULT 3)
RETURNS products.publications
LANGUAGE plpgsql AS $$
DECLARE
    r products.publications;
BEGIN
    IF p_src IS NULL OR p_dest IS NULL OR p_src !~ '^/' OR p_dest !~ '^/'
       OR p_src ~ '(^|/)\.\.?(/|$)' OR p_dest ~ '(^|/)\.\.?(/|$)' THEN
        RAISE EXCEPTION 'publication paths must be absolute without . or .. components: % -> %',
            p_src, p_dest USING ERRCODE = '22023';
    END IF;
    INSERT INTO products.publications AS p (src_path, dest_path, kind, group_id, max_attempts)
    VALUES (p_src, p_dest, p_kind, p_group, p_max_attempts)
    ON CONFLICT (src_path) DO UPDATE
       SET status = 'staged', attempts = 0, next_attempt_at = now(), last_error = NULL,
           dest_path = EXCLUDED.dest_path, max_attempts = EXCLUDED.max_attempts,
           updated_at = now()
     WHERE p.status = 'failed'
    RETURNING * INTO r;
    IF r.src_path IS NULL THEN
        SELECT * INTO r FROM products.publications WHERE src_path = p_src;
    END IF;
    RETURN r;
END $$;

-- Claims up to p_limit files due for publishing (of p_srcs only, when given): staged ones
-- whose next attempt is due, and publishing ones whose claim is older than p_stale_sec (a
-- publisher that died). Locked rows are skipped: two publishers never claim one file.
CREATE FUNCTION products.claim_publications(p_worker text, p_limit integer DEFAULT 100,
                                            p_srcs text[] DEFAULT NULL,
                                            p_stale_sec double precision DEFAULT 600)
RETURNS SETOF products.publications
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT p.src_path FROM products.publications p
         WHERE (p_srcs IS NULL OR p.src_path = ANY (p_srcs))
           AND ((p.status = 'staged' AND p.next_attempt_at <= now())
                OR (p.status = 'publishing'
                    AND p.claimed_at < now() - p_stale_sec * interval '1 second'))
         ORDER BY p.next_attempt_at, p.src_path
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    )
    UPDATE products.publications p
       SET status = 'publishing', claimed_by = p_worker, claimed_at = now(),
           attempts = p.attempts + 1, updated_at = now()
      FROM picked
     WHERE p.src_path = picked.src_path
    RETURNING p.*;
END $$;

-- Records the outcome of a claimed file's move: published (p_error NULL), or the error
-- kept and the file staged again after p_backoff_sec x 2^(attempts - 1), or failed at its
-- last attempt or at once when p_final (a path refused: no retry changes that). A claim that is no longer p_worker's (taken over as stale) changes
-- nothing. Returns the row's status after.
CREATE FUNCTION products.finish_publication(p_src text, p_worker text, p_error text,
                                            p_bytes bigint DEFAULT NULL,
                                            p_backoff_sec double precision DEFAULT 10,
                                            p_final boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    UPDATE products.publications p
       SET status = CASE WHEN p_error IS NULL THEN 'published'
                         WHEN p.attempts >= p.max_attempts OR p_final THEN 'failed'
                         ELSE 'staged' END,
           last_error = p_error,
           bytes = coalesce(p_bytes, p.bytes),
           published_at = CASE WHEN p_error IS NULL THEN now() END,
           next_attempt_at = CASE WHEN p_error IS NULL THEN p.next_attempt_at
                                  ELSE now() + p_backoff_sec * 2 ^ (p.attempts - 1)
                                       * interval '1 second' END,
           claimed_by = NULL, claimed_at = NULL, updated_at = now()
     WHERE p.src_path = p_src AND p.status = 'publishing' AND p.claimed_by = p_worker
    RETURNING p.status INTO st;
    RETURN st;
END $$;
