"""Packaged training configs (TOML): digits_mlp, digits_cnn, demo. Load with hil.train.config.load_config(name)."""
