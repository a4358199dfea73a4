"""Expectations: Great Expectations suites profiled, run and summarised, without Prefect.

Each pipeline config owns two suites in the file context under `Settings.gx_root`:

- `<suite>.features`: the feature columns only, so it also applies at scoring and monitoring time,
  when the target is absent;
- `<suite>.training`: the target, the table's columns and its row count.

The checkpoint `<suite>.training` runs both; `<suite>.scoring` runs the features suite alone.
`mlops suite init` writes a starting point profiled from reference data (`profile.init_suites`);
a person reviews and commits the JSON under `great_expectations/`.

Modules: `suites` (names), `profile` (design time), `run` (`validate_frame`), `summary`
(results in words), `quarantine`, `gate` (the data gate), `gx` (the one adapter over GX
internals and the workarounds that keep validation fast), `chunked` (a snapshot in bounded
memory), `background` (GX imported and the checkpoint opened while a fresh process ingests).
"""
