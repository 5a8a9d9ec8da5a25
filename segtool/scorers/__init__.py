"""Shipped cluster scorers (JSON), one per pipeline method; see segtool.pipeline.foreground.scorer."""
