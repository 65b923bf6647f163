-- 0011: least privilege. Three group roles (NOLOGIN) that login roles are made members of
-- (docs/security.md): nothing but the owner -- whoever runs `contimg db migrate` -- may
-- change the schema.
--
--   contimg_engine  the engine and ingest: read and write the queue and the products
--                   tables, call the queue's functions; no DDL, no ownership.
--   contimg_api     `contimg serve`: the same rows (it spawns, cancels, retries,
--                   schedules); kept apart so that its grants can narrow on their own.
--   contimg_reader  dashboards and people with psql: read only.
--
-- Making roles needs CREATEROLE. An owner without it (an external database whose
-- administrator makes roles by hand) gets a notice and the schema as before; the grants
-- below are then the administrator's to give (docs/security.md lists them).

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['contimg_engine', 'contimg_api', 'contimg_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    GRANT USAGE ON SCHEMA absurd, products TO contimg_engine, contimg_api, contimg_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA absurd, products TO contimg_reader;
    GRANT SELECT ON public.contimg_schema_migrations
        TO contimg_engine, contimg_api, contimg_reader;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA absurd, products
        TO contimg_engine, contimg_api;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA absurd, products
        TO contimg_engine, contimg_api, contimg_reader;
    -- What later migrations make, the same (they run as this owner).
    ALTER DEFAULT PRIVILEGES IN SCHEMA absurd, products
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO contimg_engine, contimg_api;
    ALTER DEFAULT PRIVILEGES IN SCHEMA absurd, products
        GRANT SELECT ON TABLES TO contimg_reader;
    -- Functions are executable by PUBLIC unless revoked; said here so it stays true.
    ALTER DEFAULT PRIVILEGES IN SCHEMA absurd, products
        GRANT EXECUTE ON FUNCTIONS TO contimg_engine, contimg_api, contimg_reader;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'contimg: the roles contimg_engine, contimg_api and contimg_reader were not '
                 'made (%): give their grants by hand (docs/security.md)', SQLERRM;
END $$;
