//! The shared store's schema, created and migrated by the router itself. Each migration runs
//! once, in order, in one transaction, under an advisory lock so replicas starting together
//! do not race. Never edit a shipped migration: add the next one.

use tokio_postgres::Client;

/// Advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x726f_7574_6572_0001;

/// (version, SQL), oldest first. Version 1: the change log, the unique text per namespace,
/// the uncertain queue.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE router_archetype_changes (
         seq bigint PRIMARY KEY,
         namespace text NOT NULL,
         op text NOT NULL CHECK (op IN ('add', 'delete')),
         archetype_id text NOT NULL,
         bucket text,
         body text,
         committed_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE INDEX router_archetype_changes_ns ON router_archetype_changes (namespace, seq);
     -- One row per archetype added through the API and not deleted: the database enforces
     -- that a text (normalised) has one bucket and an id one text, per namespace.
     CREATE TABLE router_archetype_texts (
         namespace text NOT NULL,
         text_key text NOT NULL,
         archetype_id text NOT NULL,
         bucket text NOT NULL,
         PRIMARY KEY (namespace, text_key),
         UNIQUE (namespace, archetype_id)
     );
     CREATE TABLE router_uncertain (
         id bigserial PRIMARY KEY,
         namespace text NOT NULL,
         item jsonb NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now()
     );",
    ),
    // Version 2: the uncertain queue is read newest first and trimmed per namespace.
    (
        2,
        "CREATE INDEX router_uncertain_ns ON router_uncertain (namespace, id);",
    ),
    // Version 3: the fleet's embedding cache, so a replica that starts later does not run the
    // model again on every text another replica embedded.
    (
        3,
        "CREATE TABLE router_vectors (
         model text NOT NULL,
         text_sha256 text NOT NULL,
         vector bytea NOT NULL,
         PRIMARY KEY (model, text_sha256)
     );",
    ),
];

/// The newest schema this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Applies the migrations the database lacks; refuses a database migrated by a newer router.
pub async fn migrate(client: &mut Client) -> Result<i32, MigrateError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS router_schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM router_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let newest = applied.iter().copied().max().unwrap_or(0);
    if newest > latest_version() {
        return Err(MigrateError::Newer {
            database: newest,
            known: latest_version(),
        });
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO router_schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "archetype store schema migrated");
    }
    tx.commit().await?;
    Ok(latest_version())
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database's schema is version {database}, newer than this router knows ({known}): upgrade the router")]
    Newer { database: i32, known: i32 },
}
