"""Run-database cassettes shipped with evolm, for the replay backend."""
