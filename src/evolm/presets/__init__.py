"""Run presets (TOML)."""
