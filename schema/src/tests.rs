use super::*;

#[test]
fn the_postgresql_lock_written_out_is_the_lock_constant() {
    let written = format!("SELECT pg_advisory_xact_lock({POSTGRESQL_MIGRATION_LOCK})");
    assert_eq!(Dialect::Postgresql.prepare()[0], written);
}

#[test]
fn each_statement_is_one_statement() {
    for dialect in [Dialect::Sqlite, Dialect::Postgresql] {
        for statement in dialect.steps().iter().flat_map(|s| s.iter()) {
            assert!(!statement.contains(';'), "{statement}");
        }
    }
}
