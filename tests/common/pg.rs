//! A PostgreSQL database of the test's own on 127.0.0.1:5432 (user
//! `postgres`, trust auth), created fresh and dropped on drop; an
//! unreachable server fails the test with a message, never skips it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Runs `work` on a thread of its own. The blocking `postgres` client runs a
/// runtime of its own and refuses to run inside a test's.
pub fn off_runtime<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

pub const PG_SERVER: &str = "127.0.0.1:5432";

/// A client on the `postgres` database, to create and drop test databases.
pub fn pg_admin() -> Result<postgres::Client, postgres::Error> {
    postgres::Client::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5",
        postgres::NoTls,
    )
}

/// A database of this test's own, `flashgate_it_<pid>_<n>`; dropped (with
/// `FORCE`, so a leftover connection cannot keep it) on drop.
pub struct PgDatabase {
    pub name: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "flashgate_it_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        off_runtime(|| {
            let mut admin = pg_admin().unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL is not reachable at {PG_SERVER} as user `postgres` ({error}); \
                     this test needs it running (it does not skip)"
                )
            });
            for statement in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                admin
                    .batch_execute(&statement)
                    .unwrap_or_else(|error| panic!("`{statement}` failed: {error}"));
            }
        });
        PgDatabase { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@{PG_SERVER}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped =
            off_runtime(|| pg_admin().and_then(|mut admin| admin.batch_execute(&statement)));
        if let Err(error) = dropped {
            eprintln!("cleanup: `{statement}` failed: {error}");
        }
    }
}

impl PgDatabase {
    /// Runs `work` with a client on this database, off the test's runtime.
    pub fn with_client<R: Send>(&self, work: impl FnOnce(&mut postgres::Client) -> R + Send) -> R {
        let url = self.url();
        off_runtime(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
            work(&mut client)
        })
    }
}
