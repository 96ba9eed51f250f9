"""Analysis: run folders, per-request samples and summaries, gap statistics, charts, the report and its page shell."""
