//! `cargo run -p migration -- status|up|down [N]`: apply or roll back the schema by hand.
//! Reads `DATABASE_URL` (and `.env`); unset means the same SQLite file the server uses.

use migration::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::Database;

const USAGE: &str = "usage: migration status | up [N] | down [N]   (DATABASE_URL selects the database)";

#[tokio::main]
async fn main() {
    let _ = dotenvy::dotenv();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps = match args.get(1).map(|n| n.parse::<u32>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => exit_with(USAGE),
    };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://data/banter.sqlite?mode=rwc".to_owned());
    if url.starts_with("sqlite://data/")
        && let Err(e) = std::fs::create_dir_all("data")
    {
        exit_with(&format!("cannot create data/: {e}"));
    }
    let db = match Database::connect(&url).await {
        Ok(db) => db,
        Err(e) => exit_with(&format!("DATABASE_URL: cannot connect: {e}")),
    };
    let result = match args.first().map(String::as_str) {
        Some("status") => Migrator::status(&db).await,
        Some("up") => Migrator::up(&db, steps).await,
        // `down` without a count rolls back one migration, never the whole schema by accident.
        Some("down") => Migrator::down(&db, Some(steps.unwrap_or(1))).await,
        _ => exit_with(USAGE),
    };
    if let Err(e) = result {
        exit_with(&format!("migration failed: {e}"));
    }
}

fn exit_with(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}
