"""One module per upstream; each exposes `plan(name, cfg, workdir, previous, settings)`."""
