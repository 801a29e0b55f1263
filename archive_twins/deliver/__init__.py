"""Deliver: the records and verdicts in, the deliverables out.

Takes the shard records (`ingest`) and the chunks' verdicts (`verify.match`). Gives
the tables (`schema` names them; `aggregate` builds them with `chains`, `families`,
`redundant` and the curator's `decisions`) as SQLite, JSON and CSV (`csvexport`),
the pages (`html` with `web/`), the report pages and summary (`reportpages`,
`report`), and the published generation behind `current` (`publish`). Nothing is
imported here: duckdb loads with the module that needs it.
"""
